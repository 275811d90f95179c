//! The upstream layer: everything about the real servers' side of a
//! relay, below the sessions that use it.
//!
//! | module | what lives there |
//! |---|---|
//! | [`pool`] | backend connections of one worker (one slab) and their per-server idle pools |
//! | [`connect`] | targets, exclusion, connecting, confirming, passive health |
//! | [`probe`] | one active health probe: connect, request, judge the response |
//! | [`checker`] | the health-check thread: schedules probes, turns results into server states |

pub(crate) mod checker;
pub(crate) mod connect;
pub(crate) mod pool;
pub(crate) mod probe;
