//! What the user sees while an apply runs: on a terminal, finished steps scroll by above a live
//! status line naming what is in flight; elsewhere, one plain line per start and finish.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_engine::apply::{ApplyObserver, Phase, StepStatus};
use berth_engine::plan::Step;
use berth_engine::render::{Style, step_line};
use tokio_util::sync::CancellationToken;

use crate::output::redact;

/// Plain lines, for logs and CI.
pub struct PlainProgress {
    pub style: Style,
    /// With `--json`, progress goes to stderr so stdout stays machine-readable.
    pub to_stderr: bool,
}

impl PlainProgress {
    fn print(&self, line: &str) {
        let line = format!("{}\n", redact(line));
        if self.to_stderr {
            eprint!("{line}");
        } else {
            print!("{line}");
        }
    }
}

fn phase_suffix(phase: Phase) -> &'static str {
    match phase {
        Phase::Main => "",
        Phase::DeleteOld => " (old)",
    }
}

impl ApplyObserver for PlainProgress {
    fn step_started(&self, step: &Step, phase: Phase) {
        if step.custom {
            self.print(&format!("{}{}", step_line(step, None, Duration::ZERO, self.style), phase_suffix(phase)));
        }
    }

    fn step_finished(&self, step: &Step, phase: Phase, status: &StepStatus, elapsed: Duration) {
        if step.custom && *status != StepStatus::Unchanged {
            self.print(&format!("{}{}", step_line(step, Some(status), elapsed, self.style), phase_suffix(phase)));
        }
    }

    fn interrupting(&self, in_flight: usize) {
        self.print(&format!(
            "Interrupt: finishing {in_flight} operation(s) in flight, then saving state. Press Ctrl-C again to exit at once."
        ));
    }
}

struct LiveState {
    in_flight: Vec<(String, Instant)>,
    done: usize,
    total: usize,
    status_shown: bool,
}

/// The terminal display: a status line redrawn in place.
pub struct LiveProgress {
    style: Style,
    state: Mutex<LiveState>,
    started: Instant,
    stop: CancellationToken,
}

impl LiveProgress {
    /// Starts the display for `total` resource steps; the redraw ticker runs until `finish`.
    pub fn start(style: Style, total: usize) -> Arc<LiveProgress> {
        let progress = Arc::new(LiveProgress {
            style,
            state: Mutex::new(LiveState { in_flight: Vec::new(), done: 0, total, status_shown: false }),
            started: Instant::now(),
            stop: CancellationToken::new(),
        });
        let ticker = progress.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_millis(200));
            loop {
                tokio::select! {
                    _ = interval.tick() => ticker.redraw(None),
                    _ = ticker.stop.cancelled() => break,
                }
            }
        });
        progress
    }

    /// Stops the ticker and clears the status line.
    pub fn finish(&self) {
        self.stop.cancel();
        if let Ok(mut state) = self.state.lock()
            && state.status_shown
        {
            print!("\r\x1b[2K");
            state.status_shown = false;
        }
    }

    fn status(&self, state: &LiveState) -> String {
        let names: Vec<String> = state.in_flight.iter().take(3).map(|(n, since)| format!("{n} {}s", since.elapsed().as_secs())).collect();
        let more = state.in_flight.len().saturating_sub(3);
        let mut text = format!("[{}/{}] {:.0}s", state.done, state.total, self.started.elapsed().as_secs_f64());
        if !names.is_empty() {
            text.push_str(&format!("  in flight: {}", names.join(", ")));
            if more > 0 {
                text.push_str(&format!(" +{more}"));
            }
        }
        let width = terminal_width();
        let cut: String = text.chars().take(width.saturating_sub(1)).collect();
        self.style.dim(&cut)
    }

    /// Prints `line` (if any) above the status line, then redraws the status line.
    fn redraw(&self, line: Option<&str>) {
        let Ok(mut state) = self.state.lock() else { return };
        if self.stop.is_cancelled() && line.is_none() {
            return;
        }
        let mut out = String::from("\r\x1b[2K");
        if let Some(line) = line {
            out.push_str(&redact(line));
            out.push('\n');
        }
        out.push_str(&self.status(&state));
        state.status_shown = true;
        print!("{out}");
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }
}

fn terminal_width() -> usize {
    // SAFETY: TIOCGWINSZ fills a winsize struct we own.
    unsafe {
        let mut size: libc::winsize = std::mem::zeroed();
        if libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) == 0 && size.ws_col > 0 { size.ws_col as usize } else { 100 }
    }
}

impl ApplyObserver for LiveProgress {
    fn step_started(&self, step: &Step, phase: Phase) {
        if !step.custom {
            return;
        }
        if let Ok(mut state) = self.state.lock() {
            state.in_flight.push((format!("{}{}", step.name(), phase_suffix(phase)), Instant::now()));
        }
        self.redraw(None);
    }

    fn step_finished(&self, step: &Step, phase: Phase, status: &StepStatus, elapsed: Duration) {
        if !step.custom {
            return;
        }
        let label = format!("{}{}", step.name(), phase_suffix(phase));
        if let Ok(mut state) = self.state.lock() {
            state.in_flight.retain(|(n, _)| n != &label);
            if phase == Phase::Main {
                state.done += 1;
            }
        }
        if *status != StepStatus::Unchanged {
            self.redraw(Some(&format!("{}{}", step_line(step, Some(status), elapsed, self.style), phase_suffix(phase))));
        }
    }

    fn interrupting(&self, in_flight: usize) {
        self.redraw(Some(&self.style.yellow(&format!(
            "Interrupt: finishing {in_flight} operation(s) in flight, then saving state. Press Ctrl-C again to exit at once."
        ))));
    }
}
