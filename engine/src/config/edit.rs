//! Setting one key in YAML text while keeping comments, blank lines and formatting, for
//! `berth config set`. Keys are located with the parsed tree's sources; the edit itself is done
//! on lines of text, and the result is parsed again and checked before it is returned.

use super::{ConfigError, Key, Node, NodeKind, Source, join_keys, parse_yaml, set_path, split_dotted_key};

/// Sets `dotted_key` to `yaml_value` (already-rendered YAML, e.g. `"db.t3.large"`, `42` or
/// `{secure: v1:...}`) in `text`, and returns the new text.
pub fn set_in_yaml_text(file: &str, text: &str, dotted_key: &str, yaml_value: &str) -> Result<String, ConfigError> {
    let fail = |message: String| ConfigError::new(message).with_key(dotted_key.to_string());
    let segments = split_dotted_key(dotted_key).map_err(fail)?;
    if yaml_value.trim().is_empty() {
        return Err(fail("the new value is empty; write `null` or `\"\"`".to_string()));
    }
    let value = parse_yaml("<value>", yaml_value).map_err(|e| fail(format!("the new value is not valid YAML: {}", e.message)))?;
    let root = parse_yaml(file, text)?;
    let mut doc = Doc::new(text);
    let edit = plan(&doc, &root, &segments, &join_keys(&segments))?;
    doc.apply(edit, &segments, yaml_value);
    let result = doc.render();

    let edited = parse_yaml(file, &result).map_err(|e| {
        fail(format!("internal error: the edited file would not parse ({e}); {file} was not changed")).with_help("edit the file by hand")
    })?;
    let mut expected = root;
    set_path(&mut expected, &segments, value, &Source::new(file, 1, 1))?;
    if !expected.same_value(&edited) {
        return Err(fail(format!(
            "setting this key in {file} would change other values too (through YAML anchors, aliases or merge keys)"
        ))
        .with_help("edit the file by hand"));
    }
    Ok(result)
}

/// The file as lines (without line terminators).
struct Doc {
    lines: Vec<String>,
    newline: &'static str,
    trailing_newline: bool,
    unit: usize,
}

enum Edit {
    /// Replace the value of the key at `line` (0-based), whose value spans up to `end`, with the
    /// value for `segments[rest..]` (nested under new keys when `rest` is not the last).
    Replace { line: usize, colon: usize, end: usize, indent: usize, rest: usize },
    /// Insert `segments[rest..]` as new keys at `indent`, after line `after` (or at the end).
    Insert { after: Option<usize>, indent: usize, rest: usize },
}

impl Doc {
    fn new(text: &str) -> Doc {
        let newline = if text.contains("\r\n") { "\r\n" } else { "\n" };
        let trailing_newline = text.ends_with('\n');
        let mut lines: Vec<String> = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l).to_string()).collect();
        if trailing_newline || text.is_empty() {
            lines.pop();
        }
        let unit = lines
            .iter()
            .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .map(|l| l.len() - l.trim_start_matches(' ').len())
            .filter(|indent| *indent > 0)
            .min()
            .unwrap_or(2);
        Doc { lines, newline, trailing_newline, unit }
    }

    fn render(&self) -> String {
        let mut text = self.lines.join(self.newline);
        if self.trailing_newline && !self.lines.is_empty() {
            text.push_str(self.newline);
        }
        text
    }

    /// The character at a 1-based source position.
    fn char_at(&self, source: &Source) -> Option<char> {
        self.lines.get(source.line.checked_sub(1)?)?.chars().nth(source.column.checked_sub(1)?)
    }

    /// Byte offset of the `:` that ends the key written at `key`.
    fn colon_of(&self, key: &Key) -> Option<usize> {
        let line = self.lines.get(key.source.line.checked_sub(1)?)?;
        let start = line.char_indices().nth(key.source.column.checked_sub(1)?)?.0;
        let rest = &line[start..];
        let after_key = match rest.chars().next()? {
            quote @ ('"' | '\'') => start + quoted_len(rest, quote)?,
            '?' => return None,
            _ => {
                let bytes = rest.as_bytes();
                let at = (0..bytes.len()).find(|&i| bytes[i] == b':' && bytes.get(i + 1).is_none_or(|b| *b == b' ' || *b == b'\t'))?;
                return Some(start + at);
            }
        };
        let gap = line[after_key..].len() - line[after_key..].trim_start().len();
        (line[after_key + gap..].starts_with(':')).then_some(after_key + gap)
    }

    /// Index of the last line that belongs to the value of a key at `indent` on line `line`
    /// (whose `:` is at byte `colon`). Comment lines after the value are left out.
    fn block_end(&self, line: usize, indent: usize, colon: usize) -> usize {
        let value_on_line = value_span(&self.lines[line], colon + 1).is_some_and(|(start, end, _)| start < end);
        let mut end = line;
        for (index, text) in self.lines.iter().enumerate().skip(line + 1) {
            let trimmed = text.trim_start_matches(' ');
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let depth = text.len() - trimmed.len();
            let compact_item = !value_on_line && depth == indent && (trimmed == "-" || trimmed.starts_with("- "));
            if depth > indent || compact_item {
                end = index;
            } else {
                break;
            }
        }
        end
    }

    fn apply(&mut self, edit: Edit, segments: &[String], yaml_value: &str) {
        match edit {
            Edit::Replace { line, colon, end, indent, rest } => {
                let child = indent + self.unit;
                let (inline, block) = if rest + 1 == segments.len() {
                    render_value(yaml_value, child)
                } else {
                    (None, self.nested(&segments[rest + 1..], child, yaml_value))
                };
                let text = &self.lines[line];
                let (start, stop, comment) = value_span(text, colon + 1).unwrap_or((colon + 1, colon + 1, None));
                let tail = match comment {
                    Some(at) => {
                        let gap = &text[if start < stop { stop } else { colon + 1 }..at];
                        format!("{}{}", if gap.is_empty() { " " } else { gap }, &text[at..])
                    }
                    None => String::new(),
                };
                // Keep an anchor (`&name`) so aliases still resolve; the final check reports
                // whether they would change.
                let anchor = text[start..stop].strip_prefix('&').map(|rest| rest.split_whitespace().next().unwrap_or_default());
                let anchor = anchor.map(|name| format!(" &{name}")).unwrap_or_default();
                let new_line = match inline {
                    Some(value) if end == line && start < stop && anchor.is_empty() => {
                        format!("{}{}{}", &text[..start], value, &text[stop..])
                    }
                    Some(value) => format!("{}{anchor} {}{}", &text[..=colon], value, tail),
                    None => format!("{}{anchor}{}", &text[..=colon], tail),
                };
                self.lines.splice(line..=end, std::iter::once(new_line).chain(block));
            }
            Edit::Insert { after, indent, rest } => {
                let lines = self.nested(&segments[rest..], indent, yaml_value);
                match after {
                    Some(after) => {
                        self.lines.splice(after + 1..after + 1, lines);
                    }
                    None => {
                        self.lines.extend(lines);
                        self.trailing_newline = true;
                    }
                }
            }
        }
    }

    /// `a:\n  b:\n    c: value` for segments `[a, b, c]` at `indent`.
    fn nested(&self, segments: &[String], indent: usize, yaml_value: &str) -> Vec<String> {
        let mut lines = Vec::new();
        let mut depth = indent;
        for (index, segment) in segments.iter().enumerate() {
            if index + 1 == segments.len() {
                let (inline, block) = render_value(yaml_value, depth + self.unit);
                let inline = inline.map(|v| format!(" {v}")).unwrap_or_default();
                lines.push(format!("{}{}:{}", " ".repeat(depth), key_text(segment), inline));
                lines.extend(block);
            } else {
                lines.push(format!("{}{}:", " ".repeat(depth), key_text(segment)));
                depth += self.unit;
            }
        }
        lines
    }
}

/// Decides where the edit goes.
fn plan(doc: &Doc, root: &Node, segments: &[String], dotted: &str) -> Result<Edit, ConfigError> {
    let fail = |message: String, at: &Source| ConfigError::new(message).at(at).with_key(dotted.to_string());
    let flow_error = |path: &str, at: &Source| {
        let what = if path.is_empty() { "the file's top level".to_string() } else { format!("`{path}`") };
        fail(format!("cannot edit this key: {what} is a flow mapping (`{{...}}`); only block mappings can be edited"), at)
            .with_help("rewrite it with one key per line, or edit the file by hand")
    };
    let mut map = root;
    // The key whose value is `map`, and the last line (0-based) of its value.
    let mut parent: Option<(&Key, usize)> = None;
    for (depth, segment) in segments.iter().enumerate() {
        let path = join_keys(&segments[..depth]);
        let entries: &[(Key, Node)] = match &map.kind {
            NodeKind::Map(entries) => entries,
            _ => {
                let what = if path.is_empty() { "the file's top level".to_string() } else { format!("`{path}`") };
                return Err(fail(format!("cannot set this key: {what} is {}, not a map", map.a_kind()), &map.source));
            }
        };
        if doc.char_at(&map.source) == Some('{') {
            return Err(flow_error(&path, &map.source));
        }
        let explicit = |key: &Key| {
            key.source.column == map.source.column
                && key.source.line >= map.source.line
                && parent.is_none_or(|(_, end)| key.source.line <= end + 1)
        };
        let found = entries.iter().find(|(key, _)| &key.name == segment);
        let last = depth + 1 == segments.len();
        match found {
            Some((key, value)) if explicit(key) => {
                let line = key.source.line - 1;
                let indent = key.source.column - 1;
                let colon = doc.colon_of(key).ok_or_else(|| fail("cannot find this key's `:` in the file".to_string(), &key.source))?;
                let end = doc.block_end(line, indent, colon);
                let replace = Edit::Replace { line, colon, end, indent, rest: depth };
                if last {
                    return Ok(replace);
                }
                let key_path = join_keys(&segments[..=depth]);
                match &value.kind {
                    NodeKind::Map(_) if value.source.position() < key.source.position() => {
                        return Err(fail(
                            format!("`{key_path}` is an alias of a value defined at {}; edit that value instead", value.source),
                            &key.source,
                        ));
                    }
                    // `{}` becomes a block; a flow map with keys cannot be edited.
                    NodeKind::Map(entries) if doc.char_at(&value.source) == Some('{') => {
                        return if entries.is_empty() { Ok(replace) } else { Err(flow_error(&key_path, &value.source)) };
                    }
                    NodeKind::Map(_) => {
                        map = value;
                        parent = Some((key, end));
                    }
                    NodeKind::Null => return Ok(replace),
                    _ => {
                        return Err(fail(format!("cannot set this key: `{key_path}` is {}, not a map", value.a_kind()), &value.source));
                    }
                }
            }
            Some((key, _)) if !last => {
                let key_path = join_keys(&segments[..=depth]);
                return Err(fail(
                    format!("`{key_path}` comes from a merge key (`<<`) or an alias; edit the value where it is defined"),
                    &key.source,
                ));
            }
            _ => {
                let indent = match (entries.is_empty(), parent) {
                    (false, _) => map.source.column - 1,
                    (true, Some((key, _))) => key.source.column - 1 + doc.unit,
                    (true, None) => 0,
                };
                let after = parent.map(|(_, end)| end);
                return Ok(Edit::Insert { after, indent, rest: depth });
            }
        }
    }
    Err(fail("empty key".to_string(), &root.source))
}

/// Byte length of a quoted scalar at the start of `text`, quotes included.
fn quoted_len(text: &str, quote: char) -> Option<usize> {
    let mut chars = text.char_indices().skip(1).peekable();
    while let Some((at, c)) = chars.next() {
        if quote == '"' && c == '\\' {
            chars.next();
        } else if c == quote {
            if quote == '\'' && chars.peek().is_some_and(|(_, next)| *next == '\'') {
                chars.next();
                continue;
            }
            return Some(at + 1);
        }
    }
    None
}

/// The value written on a line after byte `from` (just past a key's `:`): start and end of the
/// value text (end exclusive, trailing spaces left out) and where a comment starts.
fn value_span(line: &str, from: usize) -> Option<(usize, usize, Option<usize>)> {
    let rest = line.get(from..)?;
    let start = from + (rest.len() - rest.trim_start().len());
    let value = &line[start..];
    let skip = match value.chars().next() {
        Some(quote @ ('"' | '\'')) => quoted_len(value, quote).unwrap_or(value.len()),
        _ => 0,
    };
    let bytes = value.as_bytes();
    let mut in_quote: Option<u8> = None;
    let mut comment = None;
    let mut i = skip;
    while i < bytes.len() {
        let b = bytes[i];
        match in_quote {
            Some(b'"') if b == b'\\' => i += 1,
            Some(q) if b == q => in_quote = None,
            Some(_) => {}
            None if (b == b'"' || b == b'\'') && i > 0 && b"[{, ".contains(&bytes[i - 1]) && value.starts_with(['[', '{']) => {
                in_quote = Some(b)
            }
            None if b == b'#' && (i == 0 || bytes[i - 1] == b' ' || bytes[i - 1] == b'\t') => {
                comment = Some(start + i);
                break;
            }
            None => {}
        }
        i += 1;
    }
    let end = comment.unwrap_or(line.len());
    let stop = start + line[start..end].trim_end().len();
    Some((start, stop.max(start), comment))
}

/// A key as written in YAML: plain when that is unambiguous, else double-quoted.
fn key_text(key: &str) -> String {
    let plain = key.chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c));
    if plain { key.to_string() } else { serde_json::to_string(key).unwrap_or_else(|_| format!("\"{key}\"")) }
}

/// A value for a key line: inline text, and the lines below it (indented by `indent`).
fn render_value(yaml_value: &str, indent: usize) -> (Option<String>, Vec<String>) {
    let value = yaml_value.trim_end_matches(['\n', '\r']);
    if !value.contains('\n') {
        return (Some(value.trim().to_string()), Vec::new());
    }
    let mut lines = value.lines();
    let indented = |line: &str| if line.trim().is_empty() { String::new() } else { format!("{}{}", " ".repeat(indent), line) };
    let first = lines.next().unwrap_or_default();
    if first.trim_start().starts_with(['|', '>']) {
        (Some(first.trim().to_string()), lines.map(indented).collect())
    } else {
        (None, std::iter::once(first).chain(lines).map(indented).collect())
    }
}
