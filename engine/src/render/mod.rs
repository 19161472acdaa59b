//! Plans and results for people (a Pulumi-style tree with Terraform's symbols and field diffs)
//! and for machines (JSON). Secrets are masked in both; unknowns read `(known after apply)`.

mod json;
mod text;

pub use json::{apply_json, drift_json, plan_json};
pub use text::{apply_summary, drift_text, plan_text, step_line};

use crate::plan::Op;

/// Terminal styling; all no-ops when colour is off.
#[derive(Clone, Copy, Debug, Default)]
pub struct Style {
    pub color: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.color { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() }
    }

    pub fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }

    pub fn dim(&self, text: &str) -> String {
        self.paint("2", text)
    }

    pub fn red(&self, text: &str) -> String {
        self.paint("31", text)
    }

    pub fn green(&self, text: &str) -> String {
        self.paint("32", text)
    }

    pub fn yellow(&self, text: &str) -> String {
        self.paint("33", text)
    }

    /// Coloured like the operation: create green, update yellow, replace magenta, delete red,
    /// import cyan.
    pub fn op(&self, op: Op, text: &str) -> String {
        match op {
            Op::Create => self.paint("32", text),
            Op::Update => self.paint("33", text),
            Op::Replace => self.paint("35", text),
            Op::Delete => self.paint("31", text),
            Op::Import => self.paint("36", text),
            Op::Same => text.to_string(),
        }
    }
}

/// How much to show.
#[derive(Clone, Copy, Debug, Default)]
pub struct RenderOptions {
    pub style: Style,
    /// Field-level detail for every changed resource.
    pub diff: bool,
    /// Also list unchanged resources.
    pub show_same: bool,
}
