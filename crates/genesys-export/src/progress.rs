//! Progress on stderr: an indicatif bar on a terminal, a plain line every N pages otherwise.

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use keel_genesys::export::{self, Observer};
use keel_genesys::sink::SinkState;

use crate::cli::ProgressMode;

/// Reports pages as they are written; the engine's [`Observer`] of the program.
#[derive(Debug)]
pub struct Progress {
    kind: Kind,
    every: u64,
    started: Instant,
    last: export::Progress,
}

#[derive(Debug)]
enum Kind {
    Bar(ProgressBar),
    Log,
    Quiet,
}

impl Progress {
    /// Progress as `mode` asks, `Auto` choosing a bar only when stderr is a terminal.
    pub fn new(mode: ProgressMode, every: u64) -> Self {
        let bar = match mode {
            ProgressMode::Auto => std::io::stderr().is_terminal(),
            ProgressMode::Bar => true,
            ProgressMode::Log | ProgressMode::Quiet => false,
        };
        let kind = if bar {
            let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            pb.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} conversations, {msg}",
                )
                .expect("static template"),
            );
            Kind::Bar(pb)
        } else if mode == ProgressMode::Quiet {
            Kind::Quiet
        } else {
            Kind::Log
        };
        Progress {
            kind,
            every: every.max(1),
            started: Instant::now(),
            last: export::Progress::default(),
        }
    }

    /// Records that `pages` pages and `conversations` conversations are written in all, out
    /// of `total` conversations when the API said.
    pub fn page(&mut self, pages: u64, conversations: u64, total: Option<u64>) {
        match &self.kind {
            Kind::Bar(pb) => {
                if let Some(t) = total {
                    pb.set_length(t.max(conversations));
                }
                pb.set_position(conversations);
                pb.set_message(format!("{pages} pages"));
            }
            Kind::Log if pages.is_multiple_of(self.every) => {
                eprintln!(
                    "{}",
                    log_line(
                        pages,
                        conversations,
                        total,
                        self.started.elapsed().as_secs_f64()
                    )
                );
            }
            Kind::Log | Kind::Quiet => {}
        }
    }

    /// Prints a line outside the bar (or plainly).
    pub fn note(&self, line: &str) {
        match &self.kind {
            Kind::Bar(pb) => pb.println(line),
            Kind::Log | Kind::Quiet => eprintln!("{line}"),
        }
    }

    /// Where the export stood at its last commit (or when it opened its output).
    pub fn last(&self) -> export::Progress {
        self.last
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Kind::Bar(pb) = &self.kind {
            pb.finish_and_clear();
        }
    }
}

impl Observer for Progress {
    fn opened(&mut self, state: &SinkState) {
        self.last.pages = state.pages;
        self.last.conversations = state.conversations;
        self.last.resumed_conversations = state.conversations;
    }

    fn committed(&mut self, progress: &export::Progress) {
        self.last = *progress;
        self.page(progress.pages, progress.conversations, progress.total_hits);
    }

    fn restarting(&mut self, cause: &keel_genesys::Error) {
        self.note(&format!(
            "genesys-export: {cause}; re-exporting that part, skipping the records already written"
        ));
    }
}

fn log_line(pages: u64, conversations: u64, total: Option<u64>, secs: f64) -> String {
    match total {
        Some(t) if t > 0 => {
            let pct = (conversations as f64 * 100.0 / t as f64).min(100.0);
            format!("genesys-export: {pages} pages, {conversations}/{t} conversations ({pct:.0}%), {secs:.1} s")
        }
        _ => format!("genesys-export: {pages} pages, {conversations} conversations, {secs:.1} s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_line_shows_share_of_total_when_known() {
        assert_eq!(
            log_line(10, 1_000, Some(4_000), 1.25),
            "genesys-export: 10 pages, 1000/4000 conversations (25%), 1.2 s"
        );
        assert_eq!(
            log_line(3, 300, None, 0.0),
            "genesys-export: 3 pages, 300 conversations, 0.0 s"
        );
    }

    #[test]
    fn explicit_modes_pick_their_kind() {
        assert!(matches!(
            Progress::new(ProgressMode::Log, 5).kind,
            Kind::Log
        ));
        assert!(matches!(
            Progress::new(ProgressMode::Quiet, 5).kind,
            Kind::Quiet
        ));
        assert!(matches!(
            Progress::new(ProgressMode::Bar, 5).kind,
            Kind::Bar(_)
        ));
        assert_eq!(Progress::new(ProgressMode::Log, 0).every, 1);
    }
}
