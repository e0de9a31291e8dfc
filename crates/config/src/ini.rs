//! A reader for oslo.config's INI dialect.
//!
//! Sections in brackets, `key = value` or `key: value`, `#`/`;` comment lines,
//! continuation lines that start with whitespace, the last assignment of a key
//! winning, and several files merged in order (`--config-file` repeated).

use std::collections::BTreeMap;

/// One option's value and where it was set (for error messages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IniValue {
    /// The raw text, continuation lines joined with `\n`.
    pub value: String,
    /// `file:line` of the assignment.
    pub origin: String,
}

/// Parsed INI files: section → option → value. Section names keep their case
/// (`DEFAULT` is upper case, backend sections are whatever the operator wrote).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ini {
    sections: BTreeMap<String, BTreeMap<String, IniValue>>,
}

/// A line the reader could not make sense of.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {reason}")]
pub struct IniSyntaxError {
    /// `file:line`.
    pub origin: String,
    /// What is wrong.
    pub reason: String,
}

impl Ini {
    /// Parses one file's text and merges it over what is already there.
    ///
    /// # Errors
    /// A line that is neither a section header, an assignment, a comment nor a
    /// continuation.
    pub fn merge_text(&mut self, text: &str, file_name: &str) -> Result<(), IniSyntaxError> {
        let mut section: Option<String> = None;
        let mut last_key: Option<String> = None;
        for (index, raw_line) in text.lines().enumerate() {
            let origin = format!("{file_name}:{}", index + 1);
            let line = raw_line.trim_end();
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
                continue;
            }
            let is_continuation = line.starts_with([' ', '\t']) && last_key.is_some();
            if is_continuation {
                let (Some(sec), Some(key)) = (&section, &last_key) else {
                    continue;
                };
                if let Some(existing) = self.sections.get_mut(sec).and_then(|s| s.get_mut(key)) {
                    if !existing.value.is_empty() {
                        existing.value.push('\n');
                    }
                    existing.value.push_str(trimmed);
                }
                continue;
            }
            if let Some(rest) = trimmed.strip_prefix('[') {
                let Some(name) = rest.strip_suffix(']') else {
                    return Err(IniSyntaxError {
                        origin,
                        reason: "unterminated section header".into(),
                    });
                };
                let name = name.trim();
                if name.is_empty() {
                    return Err(IniSyntaxError {
                        origin,
                        reason: "empty section name".into(),
                    });
                }
                self.sections.entry(name.to_owned()).or_default();
                section = Some(name.to_owned());
                last_key = None;
                continue;
            }
            let Some(split_at) = trimmed.find(['=', ':']) else {
                return Err(IniSyntaxError {
                    origin,
                    reason: format!("expected `key = value`, got {trimmed:?}"),
                });
            };
            let key = trimmed[..split_at].trim();
            let value = trimmed[split_at + 1..].trim();
            if key.is_empty() {
                return Err(IniSyntaxError {
                    origin,
                    reason: "empty option name".into(),
                });
            }
            let Some(sec) = &section else {
                return Err(IniSyntaxError {
                    origin,
                    reason: "option outside of any section".into(),
                });
            };
            self.sections.entry(sec.clone()).or_default().insert(
                key.to_owned(),
                IniValue {
                    value: value.to_owned(),
                    origin,
                },
            );
            last_key = Some(key.to_owned());
        }
        Ok(())
    }

    /// The raw value of `section.option`.
    pub fn get(&self, section: &str, option: &str) -> Option<&IniValue> {
        self.sections.get(section)?.get(option)
    }

    /// Section names, in sorted order.
    pub fn section_names(&self) -> impl Iterator<Item = &str> {
        self.sections.keys().map(String::as_str)
    }

    /// Option names of a section.
    pub fn option_names(&self, section: &str) -> Vec<&str> {
        self.sections
            .get(section)
            .map(|s| s.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// Sets a value programmatically (built-in defaults, command-line overrides).
    pub fn set(&mut self, section: &str, option: &str, value: &str, origin: &str) {
        self.sections.entry(section.to_owned()).or_default().insert(
            option.to_owned(),
            IniValue {
                value: value.to_owned(),
                origin: origin.to_owned(),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sections_comments_and_continuations() {
        let mut ini = Ini::default();
        ini.merge_text(
            "# comment\n[DEFAULT]\nhost = node1\nenabled_backends=a,\n  b\n; x\n[a]\nvolume_driver: file\n",
            "c.conf",
        )
        .unwrap();
        assert_eq!(ini.get("DEFAULT", "host").unwrap().value, "node1");
        assert_eq!(
            ini.get("DEFAULT", "enabled_backends").unwrap().value,
            "a,\nb"
        );
        assert_eq!(ini.get("a", "volume_driver").unwrap().value, "file");
        assert_eq!(ini.get("a", "volume_driver").unwrap().origin, "c.conf:8");
    }

    #[test]
    fn later_files_override_earlier_ones() {
        let mut ini = Ini::default();
        ini.merge_text("[DEFAULT]\nhost = a\n", "1").unwrap();
        ini.merge_text("[DEFAULT]\nhost = b\n", "2").unwrap();
        assert_eq!(ini.get("DEFAULT", "host").unwrap().value, "b");
    }

    #[test]
    fn reports_bad_lines_with_their_origin() {
        let mut ini = Ini::default();
        let err = ini
            .merge_text("[DEFAULT]\njust words\n", "x.conf")
            .unwrap_err();
        assert_eq!(err.origin, "x.conf:2");
        let err = ini.merge_text("host = a\n", "y.conf").unwrap_err();
        assert!(err.reason.contains("outside"));
        assert!(ini.merge_text("[broken\n", "z").is_err());
    }
}
