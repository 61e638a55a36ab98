//! HTTP load balancer.
