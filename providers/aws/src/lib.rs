//! berth's aws provider (being built).
