//! ktcpvs
