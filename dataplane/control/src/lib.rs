//! Control channel between the mapping agent and the dataplane: versioned, framed messages
#![forbid(unsafe_code)]
