//! The named `serve` flags (`--data-dir`, `--listen`, ...), one per key the table gives a
//! `flag`, as a hand-written `clap::Args`.

use std::fmt;

use super::{KEYS, Key};

/// The named `serve` flags, one per key declared with a `flag` (`--data-dir`, `--listen`,
/// `--batch-period-seconds`, `--retention-days`). `Debug` shows which are given, not their
/// values.
#[derive(Clone, Default)]
pub struct ConfigFlags {
    pub(super) values: Vec<(&'static Key, String)>,
}

impl ConfigFlags {
    /// Flags as if given on the command line: `(key path, value)` pairs.
    ///
    /// # Panics
    /// When a path is not a key with a flag (a bug in the test).
    #[cfg(test)]
    pub(super) fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> ConfigFlags {
        let values = pairs
            .into_iter()
            .map(|(path, value)| {
                let key = Key::find(path)
                    .filter(|key| key.flag.is_some())
                    .unwrap_or_else(|| panic!("{path} has no flag"));
                (key, value.to_owned())
            })
            .collect();
        ConfigFlags { values }
    }
}

impl fmt::Debug for ConfigFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.values.iter().map(|(key, _)| key.path))
            .finish()
    }
}

impl clap::FromArgMatches for ConfigFlags {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut flags = ConfigFlags::default();
        flags.update_from_arg_matches(matches)?;
        Ok(flags)
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        for key in KEYS {
            if let Some(flag) = key.flag
                && let Some(value) = matches.get_one::<String>(flag)
            {
                self.values.retain(|(k, _)| k.path != key.path);
                self.values.push((key, value.clone()));
            }
        }
        Ok(())
    }
}

impl clap::Args for ConfigFlags {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        KEYS.iter().fold(cmd, |cmd, key| match key.flag {
            Some(flag) => cmd.arg(clap::Arg::new(flag).long(flag).value_name("VALUE").help(
                format!("{} (config key {key}, env {})", key.summary(), key.env()),
            )),
            None => cmd,
        })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}
