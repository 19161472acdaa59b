//! berth's vault provider (being built).
