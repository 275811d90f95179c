//! Tests of the framing module on raw bytes.
