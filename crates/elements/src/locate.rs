//! Where a field of a definition file is: the line of a field path such as
//! `resources[3].vendorPath`, read from the file's text with a YAML event parser
//! (JSON files are YAML too), so a refusal can name the line to change.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser};

/// One step of a field path: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Key(String),
    Index(usize),
}

/// The lines of every node of one file, by field path.
#[derive(Debug, Default)]
pub(crate) struct Lines {
    by_path: HashMap<Vec<Step>, usize>,
}

/// A mapping waiting for its next key (or holding the key whose value comes next),
/// or a sequence counting its items.
enum Frame {
    Map(Option<String>),
    Seq(usize),
}

impl Lines {
    /// Indexes `text`; a document the parser gives up on keeps what it read until then.
    pub(crate) fn of(text: &str) -> Lines {
        let mut lines = Lines::default();
        let mut parser = Parser::new_from_str(text);
        let mut frames: Vec<Frame> = Vec::new();
        let mut path: Vec<Step> = Vec::new();
        while let Ok((event, mark)) = parser.next_token() {
            // A scalar in key position names the field; the line is the key's.
            if let (Event::Scalar(value, ..), Some(Frame::Map(key @ None))) = (&event, frames.last_mut()) {
                *key = Some(value.clone());
                let mut at = path.clone();
                at.push(Step::Key(value.clone()));
                lines.by_path.entry(at).or_insert(mark.line());
                continue;
            }
            match event {
                Event::Scalar(..) | Event::Alias(_) => {
                    if let Some(step) = value_step(&frames) {
                        let mut at = path.clone();
                        at.push(step);
                        lines.by_path.entry(at).or_insert(mark.line());
                    }
                    done_value(&mut frames);
                }
                Event::MappingStart(..) | Event::SequenceStart(..) => {
                    if let Some(step) = value_step(&frames) {
                        path.push(step);
                    }
                    lines.by_path.entry(path.clone()).or_insert(mark.line());
                    frames.push(if matches!(event, Event::MappingStart(..)) { Frame::Map(None) } else { Frame::Seq(0) });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    frames.pop();
                    if !frames.is_empty() {
                        path.pop();
                    }
                    done_value(&mut frames);
                }
                Event::StreamEnd => break,
                _ => {}
            }
        }
        lines
    }

    /// The line of `field` (`resources[3].where[billing_address.email].eq`), or of
    /// the nearest enclosing field the file writes (a defaulted field is not written).
    pub(crate) fn line_of(&self, field: &str) -> Option<usize> {
        let mut steps = steps(field);
        // Down to a top-level field: the document's first line says nothing.
        while !steps.is_empty() {
            if let Some(line) = self.by_path.get(&steps) {
                return Some(*line);
            }
            steps.pop();
        }
        None
    }
}

/// The step that names the next node inside the innermost container.
fn value_step(frames: &[Frame]) -> Option<Step> {
    match frames.last()? {
        Frame::Map(Some(key)) => Some(Step::Key(key.clone())),
        // A complex (non-scalar) key: not a field any check names.
        Frame::Map(None) => Some(Step::Key(String::new())),
        Frame::Seq(i) => Some(Step::Index(*i)),
    }
}

/// A value is complete: its mapping waits for the next key, its sequence counts it.
fn done_value(frames: &mut [Frame]) {
    match frames.last_mut() {
        Some(Frame::Map(key)) => *key = None,
        Some(Frame::Seq(i)) => *i += 1,
        None => {}
    }
}

/// `a.b[2][some.key].c` as steps: dots separate keys, `[n]` is an index, `[text]`
/// a key that may hold dots.
fn steps(field: &str) -> Vec<Step> {
    let mut out = Vec::new();
    let mut rest = field;
    while !rest.is_empty() {
        if let Some(inner) = rest.strip_prefix('[') {
            let end = inner.find(']').unwrap_or(inner.len());
            let text = &inner[..end];
            out.push(match text.parse() {
                Ok(i) => Step::Index(i),
                Err(_) => Step::Key(text.trim_matches('"').to_owned()),
            });
            rest = inner.get(end + 1..).unwrap_or("");
        } else if let Some(after) = rest.strip_prefix('.') {
            rest = after;
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            out.push(Step::Key(rest[..end].to_owned()));
            rest = &rest[end..];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_found_in_block_and_flow_style() {
        let text = "key: a\nid: 1\nresources:\n  - path: /x\n    vendorPath: /y\n  - {path: /z, vendorPath: /w}\nwhere:\n  billing_address.email: {eq: email}\n";
        let lines = Lines::of(text);
        assert_eq!(lines.line_of("key"), Some(1));
        assert_eq!(lines.line_of("id"), Some(2));
        assert_eq!(lines.line_of("resources[0].vendorPath"), Some(5));
        assert_eq!(lines.line_of("resources[1].vendorPath"), Some(6));
        assert_eq!(lines.line_of("resources[1].updateMethod"), Some(6), "a defaulted field: its resource");
        assert_eq!(lines.line_of("where[billing_address.email].eq"), Some(8));
        assert_eq!(lines.line_of("nothing.here"), None);
    }

    #[test]
    fn json_files_are_read_too() {
        let lines = Lines::of("{\n  \"key\": \"a\",\n  \"resources\": [\n    {\"path\": \"/x\"},\n    {\"path\": \"/y\"}\n  ]\n}\n");
        assert_eq!(lines.line_of("key"), Some(2));
        assert_eq!(lines.line_of("resources[1].path"), Some(5));
    }
}
