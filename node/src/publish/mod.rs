//! Publication to object storage: after each cut and purge the node writes what phones and
//! key servers read (signed batches, token filters, index pages, GAEN exports and
//! `index.txt`, the authority's keys) to a folder or an S3 bucket, under the API's paths
//! and with its headers, so a CDN can serve them with no node behind it
//! (`node/docs/OPERATIONS.md`, "Publishing to object storage and a CDN").
//!
//! A write that fails is counted in `ephemera_publication_failures_total` and retried at
//! the next cut; it never touches uploads. Files purged from the node are deleted.

mod tree;

pub use tree::{INDEX_PAGES, Layout, REVALIDATE, SHORT, StaticFile, Tree, load, tree};

use std::collections::HashSet;
use std::path::Path as FsPath;
use std::sync::Arc;

use futures::StreamExt as _;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{
    Attribute, Attributes, ObjectStore, ObjectStoreExt as _, PutOptions, PutPayload,
};
use thiserror::Error;
use tokio::sync::Mutex;

use crate::node::Node;

/// Top folders of the published tree: only what lies below them is listed and deleted.
const TOP: [&str; 2] = ["v1", "v2"];

/// The object store could not be set up.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PublishError {
    /// `[publication] object_store` is not a `file:///…` or `s3://…` URL.
    #[error("publication.object_store: {0}")]
    Url(String),
    /// The store refused its settings or a folder could not be made.
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    /// The node could not read what to publish.
    #[error("reading what to publish: {0}")]
    Node(String),
}

/// Where `[publication] object_store` points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `file:///absolute/folder`.
    Folder(std::path::PathBuf),
    /// `s3://bucket/optional/prefix`.
    S3 {
        /// The bucket.
        bucket: String,
        /// Key prefix, without slashes at either end ("" for none).
        prefix: String,
    },
}

impl Target {
    /// Parses an `object_store` setting.
    ///
    /// # Errors
    /// A sentence saying what is wrong.
    pub fn parse(url: &str) -> Result<Target, String> {
        if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err("a file:// URL needs an absolute path (file:///srv/ephemera)".into());
            }
            if path.split('/').any(|part| part == "..") {
                return Err("a file:// path may not contain ..".into());
            }
            return Ok(Target::Folder(path.into()));
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let bucket_ok = (3..=63).contains(&bucket.len())
                && bucket
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b));
            if !bucket_ok {
                return Err("the bucket must be 3 to 63 of a-z, 0-9, '-' and '.'".into());
            }
            let prefix = prefix.trim_matches('/');
            if prefix.split('/').any(|p| p == "." || p == "..")
                || prefix
                    .chars()
                    .any(|c| c.is_control() || c == '?' || c == '#')
            {
                return Err(
                    "the prefix may not hold '.', '..', '?', '#' or control characters".into(),
                );
            }
            return Ok(Target::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.to_owned(),
            });
        }
        Err("expected file:///absolute/folder or s3://bucket/prefix".into())
    }
}

/// S3 settings besides the URL; credentials come from the environment
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, … as `object_store` reads them).
#[derive(Clone, Debug, Default)]
pub struct S3Settings {
    /// Endpoint of an S3-compatible server (`http://127.0.0.1:9000`).
    pub endpoint: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// Allow plain HTTP (a test server on loopback).
    pub allow_http: bool,
}

/// What one round of publication did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Published {
    /// Files written.
    pub written: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Files deleted (purged from the node).
    pub deleted: u64,
    /// Writes and deletions that failed (retried next round).
    pub failed: u64,
}

/// Writes the node's published tree to one object store.
pub struct Publisher {
    store: Arc<dyn ObjectStore>,
    layout: Layout,
    /// Paths known to be in the store; `None` until listed once.
    known: Mutex<Option<HashSet<String>>>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// A publisher for `target`.
    ///
    /// # Errors
    /// [`PublishError::Store`] when the folder cannot be made or S3 settings are refused.
    pub fn new(target: &Target, s3: &S3Settings) -> Result<Publisher, PublishError> {
        match target {
            Target::Folder(dir) => Publisher::folder(dir),
            Target::S3 { bucket, prefix } => {
                let mut builder = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_allow_http(s3.allow_http);
                if let Some(endpoint) = &s3.endpoint {
                    builder = builder.with_endpoint(endpoint);
                }
                if let Some(region) = &s3.region {
                    builder = builder.with_region(region);
                }
                let s3 = builder.build()?;
                let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
                    Arc::new(s3)
                } else {
                    Arc::new(PrefixStore::new(s3, prefix.as_str()))
                };
                Ok(Publisher::with_store(store, Layout::Keys))
            }
        }
    }

    /// A publisher writing into the folder `dir` (made if missing), in the folder layout.
    ///
    /// # Errors
    /// [`PublishError::Store`] when the folder cannot be made.
    pub fn folder(dir: &FsPath) -> Result<Publisher, PublishError> {
        std::fs::create_dir_all(dir).map_err(|e| object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(e),
        })?;
        let store = LocalFileSystem::new_with_prefix(dir)?.with_automatic_cleanup(true);
        Ok(Publisher::with_store(Arc::new(store), Layout::Folder))
    }

    /// A publisher over any store.
    pub fn with_store(store: Arc<dyn ObjectStore>, layout: Layout) -> Publisher {
        Publisher {
            store,
            layout,
            known: Mutex::new(None),
        }
    }

    /// Writes what is new since the last round (every document, and immutable files not
    /// yet in the store), and deletes what the node no longer has. A failed write or
    /// deletion is counted and retried next round.
    ///
    /// # Errors
    /// [`PublishError`] when the store cannot be listed or the node read; nothing is then
    /// written.
    pub async fn publish(&self, node: &Node) -> Result<Published, PublishError> {
        let mut known = self.known.lock().await;
        if known.is_none() {
            *known = Some(self.list().await?);
        }
        let known = known.as_mut().expect("listed above");
        let (reader, layout, seen) = (node.clone(), self.layout, known.clone());
        let tree = tokio::task::spawn_blocking(move || tree(&reader, layout, &seen))
            .await
            .map_err(|_| PublishError::Node("task failed".into()))?
            .map_err(|e| PublishError::Node(e.to_string()))?;
        let mut done = Published::default();
        let live = tree.paths();
        for (path, what) in &tree.immutable {
            if known.contains(path) {
                continue;
            }
            let file = match load(node, path.clone(), what) {
                Ok(Some(file)) => file,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read a file to publish");
                    done.failed += 1;
                    continue;
                }
            };
            self.write(file, known, &mut done).await;
        }
        for file in tree.documents {
            self.write(file, known, &mut done).await;
        }
        let gone: Vec<String> = known.difference(&live).cloned().collect();
        for path in gone {
            match self.store.delete(&Path::from(path.as_str())).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                    known.remove(&path);
                    done.deleted += 1;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot delete a purged file from the object store");
                    done.failed += 1;
                }
            }
        }
        node.metrics().publication(&done);
        Ok(done)
    }

    async fn write(&self, file: StaticFile, known: &mut HashSet<String>, done: &mut Published) {
        let attributes = match self.layout {
            // A folder has no headers: the web server in front sets them (OPERATIONS.md).
            Layout::Folder => Attributes::new(),
            Layout::Keys => Attributes::from_iter([
                (Attribute::ContentType, file.content_type),
                (Attribute::CacheControl, file.cache_control),
            ]),
        };
        let options = PutOptions {
            attributes,
            ..PutOptions::default()
        };
        let bytes = file.body.len() as u64;
        let path = Path::from(file.path.as_str());
        match self
            .store
            .put_opts(&path, PutPayload::from_bytes(file.body), options)
            .await
        {
            Ok(_) => {
                known.insert(file.path);
                done.written += 1;
                done.bytes += bytes;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot write a file to the object store");
                done.failed += 1;
            }
        }
    }

    /// Every path under the tree's top folders now in the store.
    async fn list(&self) -> Result<HashSet<String>, PublishError> {
        let mut known = HashSet::new();
        for top in TOP {
            let mut listing = self.store.list(Some(&Path::from(top)));
            while let Some(meta) = listing.next().await {
                known.insert(meta?.location.to_string());
            }
        }
        Ok(known)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn targets_parse_and_bad_ones_are_refused_clearly() {
        assert_eq!(
            Target::parse("file:///srv/ephemera/static"),
            Ok(Target::Folder("/srv/ephemera/static".into()))
        );
        assert_eq!(
            Target::parse("s3://ephemera-public/de/v/"),
            Ok(Target::S3 {
                bucket: "ephemera-public".into(),
                prefix: "de/v".into()
            })
        );
        assert_eq!(
            Target::parse("s3://ephemera-public"),
            Ok(Target::S3 {
                bucket: "ephemera-public".into(),
                prefix: String::new()
            })
        );
        for (bad, says) in [
            ("file://relative/dir", "absolute"),
            ("file:///srv/../etc", ".."),
            ("http://example.org/x", "expected file:///"),
            ("gs://bucket", "expected file:///"),
            ("s3://Bucket", "bucket"),
            ("s3://ab", "bucket"),
            ("s3://under_score", "bucket"),
            ("s3://bucket/a/../b", "prefix"),
            ("s3://bucket/a?x", "prefix"),
            ("s3://bucket/a\nb", "prefix"),
            ("", "expected"),
        ] {
            let error = Target::parse(bad).unwrap_err();
            assert!(error.contains(says), "{bad:?}: {error}");
        }
    }

    proptest! {
        #[test]
        fn target_parsing_never_panics(url in "\\PC{0,80}", tail in "[a-z0-9./?#-]{0,40}") {
            let _ = Target::parse(&url);
            for scheme in ["file://", "s3://"] {
                if let Ok(Target::S3 { bucket, prefix }) = Target::parse(&format!("{scheme}{tail}")) {
                    prop_assert!(!bucket.is_empty() && !prefix.split('/').any(|p| p == ".."));
                }
            }
        }
    }
}
