//! Trackers that adjust an instance's priority or put it in FAULT.
pub mod script;
