//! Test support lives in the test targets.
