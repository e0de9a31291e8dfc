//! Typed reads of INI options with oslo's interpolation, recording which
//! options were consumed so the rest can be reported as unknown.

use std::collections::{BTreeMap, BTreeSet};

use crate::ConfigError;
use crate::ini::Ini;

/// Reads options of one [`Ini`], resolving `$name` / `${name}` against the
/// `[DEFAULT]` section and the built-in defaults, and remembers every
/// `(section, option)` it was asked for.
#[derive(Debug)]
pub(crate) struct OptionReader<'a> {
    ini: &'a Ini,
    defaults: BTreeMap<&'static str, String>,
    consumed: BTreeSet<(String, String)>,
    /// Every option asked for, in order, with its default when the reader
    /// was given one: what `clinker manage config sample` prints.
    pub(crate) asked: Vec<crate::SampleOption>,
}

impl<'a> OptionReader<'a> {
    pub(crate) fn new(ini: &'a Ini, defaults: BTreeMap<&'static str, String>) -> Self {
        Self {
            ini,
            defaults,
            consumed: BTreeSet::new(),
            asked: Vec::new(),
        }
    }

    /// Marks an option as known without reading it (accepted for
    /// compatibility, no effect in Clinker).
    pub(crate) fn accept(&mut self, section: &str, option: &str) {
        self.consumed
            .insert((section.to_owned(), option.to_owned()));
    }

    /// Options present in `section` that nobody asked for.
    pub(crate) fn unconsumed(&self, section: &str) -> Vec<String> {
        self.ini
            .option_names(section)
            .into_iter()
            .filter(|o| {
                !self
                    .consumed
                    .contains(&(section.to_owned(), (*o).to_owned()))
            })
            .map(str::to_owned)
            .collect()
    }

    /// The raw (interpolated) text, if set. `fallback` sections are looked at
    /// in order when `section` does not set it (Cinder's backend sections fall
    /// back to `[backend_defaults]`).
    pub(crate) fn raw(
        &mut self,
        section: &str,
        fallback: &[&str],
        option: &str,
    ) -> Result<Option<String>, ConfigError> {
        self.consumed
            .insert((section.to_owned(), option.to_owned()));
        if !self
            .asked
            .iter()
            .any(|a| a.section == section && a.option == option)
        {
            self.asked.push(crate::SampleOption {
                section: section.to_owned(),
                option: option.to_owned(),
                default: None,
            });
        }
        for fb in fallback {
            self.consumed.insert(((*fb).to_owned(), option.to_owned()));
        }
        let found = std::iter::once(section)
            .chain(fallback.iter().copied())
            .find_map(|s| self.ini.get(s, option).map(|v| (s, v)));
        let Some((found_section, value)) = found else {
            return Ok(None);
        };
        self.interpolate(&value.value, 0)
            .map(Some)
            .map_err(|reason| ConfigError::invalid(found_section, option, &value.value, reason))
    }

    /// Records the default of the option asked for last.
    fn note_default(&mut self, section: &str, option: &str, default: String) {
        if let Some(asked) = self
            .asked
            .iter_mut()
            .rev()
            .find(|a| a.section == section && a.option == option)
        {
            asked.default.get_or_insert(default);
        }
    }

    fn lookup_for_interpolation(&self, name: &str) -> Option<String> {
        self.ini
            .get("DEFAULT", name)
            .map(|v| v.value.clone())
            .or_else(|| self.defaults.get(name).cloned())
    }

    fn interpolate(&self, text: &str, depth: u32) -> Result<String, String> {
        if depth > 8 {
            return Err("interpolation is nested too deeply (a cycle?)".into());
        }
        let mut out = String::with_capacity(text.len());
        let mut chars = text.char_indices().peekable();
        while let Some((_, c)) = chars.next() {
            if c != '$' {
                out.push(c);
                continue;
            }
            match chars.peek().map(|(_, c)| *c) {
                Some('$') => {
                    chars.next();
                    out.push('$');
                }
                Some('{') => {
                    chars.next();
                    let mut name = String::new();
                    let mut closed = false;
                    for (_, c) in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        name.push(c);
                    }
                    if !closed {
                        return Err("unterminated ${...}".into());
                    }
                    out.push_str(&self.resolve(&name, depth)?);
                }
                Some(c) if c.is_ascii_alphanumeric() || c == '_' => {
                    let mut name = String::new();
                    while let Some((_, c)) = chars.peek() {
                        if c.is_ascii_alphanumeric() || *c == '_' {
                            name.push(*c);
                            chars.next();
                        } else {
                            break;
                        }
                    }
                    out.push_str(&self.resolve(&name, depth)?);
                }
                _ => out.push('$'),
            }
        }
        Ok(out)
    }

    fn resolve(&self, name: &str, depth: u32) -> Result<String, String> {
        let value = self
            .lookup_for_interpolation(name)
            .ok_or_else(|| format!("${name} refers to an option that is not set"))?;
        self.interpolate(&value, depth + 1)
    }

    pub(crate) fn string(
        &mut self,
        section: &str,
        fallback: &[&str],
        option: &str,
        default: &str,
    ) -> Result<String, ConfigError> {
        let value = self.raw(section, fallback, option)?;
        self.note_default(section, option, default.to_owned());
        Ok(value.unwrap_or_else(|| default.to_owned()))
    }

    pub(crate) fn opt_string(
        &mut self,
        section: &str,
        fallback: &[&str],
        option: &str,
    ) -> Result<Option<String>, ConfigError> {
        Ok(self
            .raw(section, fallback, option)?
            .filter(|v| !v.is_empty()))
    }

    pub(crate) fn int(
        &mut self,
        section: &str,
        fallback: &[&str],
        option: &str,
        default: i64,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<i64, ConfigError> {
        let raw = self.raw(section, fallback, option)?;
        self.note_default(section, option, default.to_string());
        let Some(text) = raw else {
            return Ok(default);
        };
        let value: i64 = text
            .trim()
            .parse()
            .map_err(|_| ConfigError::invalid(section, option, &text, "not an integer".into()))?;
        if !range.contains(&value) {
            return Err(ConfigError::invalid(
                section,
                option,
                &text,
                format!("must be between {} and {}", range.start(), range.end()),
            ));
        }
        Ok(value)
    }

    pub(crate) fn float(
        &mut self,
        section: &str,
        fallback: &[&str],
        option: &str,
        default: f64,
        min: f64,
    ) -> Result<f64, ConfigError> {
        let raw = self.raw(section, fallback, option)?;
        self.note_default(section, option, default.to_string());
        let Some(text) = raw else {
            return Ok(default);
        };
        let value: f64 = text
            .trim()
            .parse()
            .map_err(|_| ConfigError::invalid(section, option, &text, "not a number".into()))?;
        if !value.is_finite() || value < min {
            return Err(ConfigError::invalid(
                section,
                option,
                &text,
                format!("must be a number >= {min}"),
            ));
        }
        Ok(value)
    }

    pub(crate) fn bool(
        &mut self,
        section: &str,
        fallback: &[&str],
        option: &str,
        default: bool,
    ) -> Result<bool, ConfigError> {
        let raw = self.raw(section, fallback, option)?;
        self.note_default(section, option, default.to_string());
        let Some(text) = raw else {
            return Ok(default);
        };
        match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(ConfigError::invalid(
                section,
                option,
                &text,
                "not a boolean (true/false)".into(),
            )),
        }
    }

    pub(crate) fn list(
        &mut self,
        section: &str,
        fallback: &[&str],
        option: &str,
        default: &[&str],
    ) -> Result<Vec<String>, ConfigError> {
        let raw = self.raw(section, fallback, option)?;
        self.note_default(section, option, default.join(","));
        let Some(text) = raw else {
            return Ok(default.iter().map(|s| (*s).to_owned()).collect());
        };
        Ok(text
            .split([',', '\n'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect())
    }

    pub(crate) fn choice(
        &mut self,
        section: &str,
        fallback: &[&str],
        option: &str,
        default: &str,
        choices: &[&str],
    ) -> Result<String, ConfigError> {
        let value = self.string(section, fallback, option, default)?;
        if !choices.contains(&value.as_str()) {
            return Err(ConfigError::invalid(
                section,
                option,
                &value,
                format!("must be one of: {}", choices.join(", ")),
            ));
        }
        Ok(value)
    }
}
