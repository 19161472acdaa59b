//! berth's kubernetes provider (being built).
