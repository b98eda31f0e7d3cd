//! The public API is documented: every service, RPC, message, enum, field, oneof and enum value
//! of `proto/vtgrid/v1/*.proto` carries a `//` comment, either in the block of comment lines
//! directly above it (a blank line breaks the block) or trailing on its own line.
//!
//! The checker reads the files line by line, which is all the protos' layout needs: one
//! declaration per line. A line that opens a block and declares something inside it on the same
//! line (`message X { uint32 a = 1; }`) is refused, so that each field can carry its comment.
//! Ignored: `syntax`, `package`, `import`, `option` and `reserved` lines, closing braces, block
//! comments (which do not count as documentation), and the continuation lines of a declaration
//! that spans several lines.

use std::path::PathBuf;

/// The public API's files (the internal protocols under `proto/vtgrid/internal/` are not checked).
const PUBLIC: [&str; 4] = ["common.proto", "host.proto", "admin.proto", "status.proto"];

/// Lines that declare nothing a comment is required for.
const IGNORED_KEYWORDS: [&str; 6] = [
    "syntax",
    "package",
    "import",
    "option",
    "reserved",
    "extensions",
];

/// The problems in one file's text, each as `file:line: what`.
fn undocumented(file: &str, text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut in_block_comment = false;
    // The line(s) directly above are `//` comment lines.
    let mut commented_above = false;
    // The last declaration has not ended yet (no `;`, `{` or `}` at its end).
    let mut continuing = false;
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let (code, trailing, touched_block) = split_line(raw, &mut in_block_comment);
        let code = code.trim();
        if code.is_empty() {
            // A comment line continues the block above; a blank line or a block comment breaks it.
            commented_above = trailing && !touched_block && raw.trim_start().starts_with("//");
            continue;
        }
        let was_continuing = continuing;
        continuing = !(code.ends_with(';') || code.ends_with('{') || code.ends_with('}'));
        if was_continuing || is_ignored(code) {
            commented_above = false;
            continue;
        }
        if !(commented_above || trailing) {
            problems.push(format!(
                "{file}:{line_no}: no comment above or after `{code}`"
            ));
        }
        if let Some(open) = code.find('{') {
            let inside = code[open + 1..].trim().trim_end_matches('}').trim_end();
            if !inside.is_empty() {
                problems.push(format!(
                    "{file}:{line_no}: declares `{inside}` on the line that opens its block; put \
                     each declaration on its own line, with its comment"
                ));
            }
        }
        commented_above = false;
    }
    if in_block_comment {
        problems.push(format!("{file}: a block comment is not closed"));
    }
    problems
}

/// A line's code (without comments), whether it has a `//` comment, and whether any of it lay in
/// a block comment. `in_block` carries a block comment from line to line.
fn split_line(raw: &str, in_block: &mut bool) -> (String, bool, bool) {
    let mut code = String::new();
    let mut touched_block = *in_block;
    let mut quote: Option<char> = None;
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if *in_block {
            if c == '*' && chars.peek() == Some(&'/') {
                chars.next();
                *in_block = false;
            }
            continue;
        }
        if let Some(q) = quote {
            code.push(c);
            if c == '\\' {
                if let Some(escaped) = chars.next() {
                    code.push(escaped);
                }
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match (c, chars.peek()) {
            ('/', Some('/')) => return (code, true, touched_block),
            ('/', Some('*')) => {
                chars.next();
                *in_block = true;
                touched_block = true;
                // A block comment separates like a space.
                code.push(' ');
            }
            ('"' | '\'', _) => {
                quote = Some(c);
                code.push(c);
            }
            _ => code.push(c),
        }
    }
    (code, false, touched_block)
}

/// A line that needs no comment: a closing brace, or a statement of an ignored kind.
fn is_ignored(code: &str) -> bool {
    if code
        .chars()
        .all(|c| c == '}' || c == ';' || c.is_whitespace())
    {
        return true;
    }
    let first = code
        .split(|c: char| c.is_whitespace() || c == '=' || c == ';')
        .next()
        .unwrap_or_default();
    IGNORED_KEYWORDS.contains(&first)
}

fn proto_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../proto/vtgrid/v1/"
    ))
}

#[test]
fn every_declaration_of_the_public_protos_is_documented() {
    let mut problems = Vec::new();
    for file in PUBLIC {
        let path = proto_dir().join(file);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        problems.extend(undocumented(&format!("proto/vtgrid/v1/{file}"), &text));
    }
    assert!(
        problems.is_empty(),
        "{} undocumented declaration(s) in the public API (give each a `//` comment above it or \
         after it):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn the_checker_reports_an_uncommented_field() {
    let text = "\
syntax = \"proto3\";
package x.v1;

// A message.
message A {
  // Documented above.
  uint32 a = 1;
  uint32 b = 2;
  uint32 c = 3; // Documented after.
}
";
    assert_eq!(
        undocumented("x.proto", text),
        ["x.proto:8: no comment above or after `uint32 b = 2;`"]
    );
}

#[test]
fn the_checker_finds_each_kind_of_declaration() {
    let text = "\
service S {
  rpc Get(A) returns (A);
}
message A {
  oneof which {
    string name = 1;
  }
  map<uint32, string> names = 2;
  message Nested {
    repeated uint64 values = 1;
  }
}
enum E {
  E_UNSPECIFIED = 0;
}
";
    let lines: Vec<usize> = undocumented("k.proto", text)
        .iter()
        .map(|p| p.split(':').nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(lines, [1, 2, 4, 5, 6, 8, 9, 10, 13, 14]);
}

#[test]
fn a_blank_line_or_a_block_comment_breaks_the_comment_above() {
    let text = "\
// Detached by the blank line.

message A {}
// Detached by the block comment.
/* not documentation */
message B {}
/* A block comment is not documentation either. */
message C {}
";
    assert_eq!(
        undocumented("b.proto", text),
        [
            "b.proto:3: no comment above or after `message A {}`",
            "b.proto:6: no comment above or after `message B {}`",
            "b.proto:8: no comment above or after `message C {}`",
        ]
    );
}

#[test]
fn the_checker_refuses_one_line_blocks_and_ignores_what_needs_no_comment() {
    let text = "\
syntax = \"proto3\";
package x.v1;
import \"google/protobuf/timestamp.proto\";
option go_package = \"example.com/x//v1\";
/*
message Hidden { uint32 a = 1; }
*/
// Two fields on one line.
message One { uint32 a = 1; }
// Empty, which is fine.
message Empty {}
// A field whose declaration spans two lines.
message Long {
  // The field.
  string long_name = 1
    [deprecated = true];
  reserved 2, 3;
}
";
    assert_eq!(
        undocumented("o.proto", text),
        [
            "o.proto:9: declares `uint32 a = 1;` on the line that opens its block; put each \
             declaration on its own line, with its comment"
        ]
    );
}
