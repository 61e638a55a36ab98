//! HTTP load balancer.
pub mod headers;
