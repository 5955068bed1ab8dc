//! Tests of the GitHub forge against wiremock.
