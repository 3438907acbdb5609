//! The published tree: every file a phone or key server reads, under the HTTP API's paths,
//! with the `Content-Type` and `Cache-Control` the API sends.

use std::collections::HashSet;

use axum::body::Bytes;
use ephemera_proto::batch::BatchId;

use crate::api::IMMUTABLE;
use crate::api::error::ApiError;
use crate::node::Node;

/// `Cache-Control` of the batch index pages and GAEN's `index.txt` (as the API's).
pub const SHORT: &str = "public, max-age=60";
/// `Cache-Control` of the authority document and export key: the API sends none, so a
/// cache revalidates them.
pub const REVALIDATE: &str = "no-cache";
/// Folder of the batch index pages: `GET /v1/batches?after=N` is the file `after/N` in it.
pub const INDEX_PAGES: &str = "v1/batches/after";

/// How paths are named where they are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Object stores (S3): keys are the API's paths exactly (`v1/batches/{id}` and
    /// `v1/batches/{id}/filter` side by side).
    Keys,
    /// A folder (a `file://` store, `publish-static`): a file cannot also be a folder, so a
    /// path with paths below it is written as `<path>/index` (`v1/batches/{id}/index`,
    /// `v1/authority/index`); nginx's `try_files $uri $uri/index` serves both.
    Folder,
}

impl Layout {
    /// Where the API path `path` (no leading `/`) is written; `parent` when other paths
    /// lie below it.
    fn name(self, path: String, parent: bool) -> String {
        match (self, parent) {
            (Layout::Folder, true) => format!("{path}/index"),
            _ => path,
        }
    }
}

/// An immutable file, written once: its body is read only when it is not yet published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Immutable {
    /// A signed batch body.
    Batch(BatchId),
    /// A batch's token filter.
    Filter(BatchId),
    /// A GAEN export zip by file name.
    Export(String),
}

/// One file to write.
#[derive(Clone, Debug)]
pub struct StaticFile {
    /// Where it goes, in the store's layout.
    pub path: String,
    /// Its bytes: those the API serves.
    pub body: Bytes,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// `Cache-Control`.
    pub cache_control: &'static str,
}

/// Everything published now: immutable files by path, and the documents (rewritten each
/// time: index pages, `index.txt`, the authority's keys).
#[derive(Debug, Default)]
pub struct Tree {
    /// Immutable files: path and what to read.
    pub immutable: Vec<(String, Immutable)>,
    /// Documents with their bytes.
    pub documents: Vec<StaticFile>,
}

impl Tree {
    /// Every path of the tree.
    pub fn paths(&self) -> HashSet<String> {
        self.immutable
            .iter()
            .map(|(p, _)| p.clone())
            .chain(self.documents.iter().map(|f| f.path.clone()))
            .collect()
    }
}

/// The tree of `node` now. An index page is written for every cursor a phone can hold:
/// 0 and each listed batch's sequence (a phone asks for the page after the last batch it
/// saw), so N batches make N + 1 pages.
///
/// # Errors
/// [`ApiError::Store`].
pub fn tree(node: &Node, layout: Layout, known: &HashSet<String>) -> Result<Tree, ApiError> {
    let mut tree = Tree::default();
    let mut cursors = vec![0];
    let mut after = 0;
    loop {
        let page = node.batch_index(after)?;
        if page.batches.is_empty() {
            break;
        }
        for entry in &page.batches {
            cursors.push(entry.sequence);
            let id = entry.id;
            let batch = format!("v1/batches/{id}");
            tree.immutable
                .push((layout.name(batch.clone(), true), Immutable::Batch(id)));
            // A filter already written is not read again to learn that it exists.
            let filter = format!("{batch}/filter");
            if known.contains(&filter) || node.token_filter(&id)?.is_some() {
                tree.immutable.push((filter, Immutable::Filter(id)));
            }
        }
        after = page.next_cursor;
    }
    for cursor in cursors {
        tree.documents.push(StaticFile {
            path: format!("{INDEX_PAGES}/{cursor}"),
            body: json(&node.batch_index(cursor)?),
            content_type: "application/json",
            cache_control: SHORT,
        });
    }
    let index = node.export_index()?;
    for name in index.lines().filter_map(|l| l.strip_prefix("v1/exports/")) {
        tree.immutable.push((
            format!("v1/exports/{name}"),
            Immutable::Export(name.to_owned()),
        ));
    }
    tree.documents.push(StaticFile {
        path: "v1/exports/index.txt".to_owned(),
        body: Bytes::from(index),
        content_type: "text/plain; charset=utf-8",
        cache_control: SHORT,
    });
    tree.documents.push(StaticFile {
        path: layout.name("v1/authority".to_owned(), true),
        body: json(&node.authority_info()),
        content_type: "application/json",
        cache_control: REVALIDATE,
    });
    tree.documents.push(StaticFile {
        path: "v1/authority/export-key.pem".to_owned(),
        body: Bytes::from(node.keys().export.public_key_pem()),
        content_type: "application/x-pem-file",
        cache_control: REVALIDATE,
    });
    tree.documents.push(StaticFile {
        path: "v1/sealing-key".to_owned(),
        body: json(&node.sealing_key_announcement()),
        content_type: "application/json",
        cache_control: "public, max-age=3600",
    });
    tree.documents.push(StaticFile {
        path: "v1/venue-key".to_owned(),
        body: json(&node.venue_key_announcement()),
        content_type: "application/json",
        cache_control: "public, max-age=3600",
    });
    tree.documents.push(StaticFile {
        path: "v2/token-keys".to_owned(),
        body: Bytes::from(node.token_key_set_frame()),
        content_type: "application/octet-stream",
        cache_control: "public, max-age=600",
    });
    Ok(tree)
}

/// The bytes of an immutable file, as the API serves them; `None` when it is gone (purged
/// since the tree was read).
///
/// # Errors
/// [`ApiError::Store`].
pub fn load(node: &Node, path: String, what: &Immutable) -> Result<Option<StaticFile>, ApiError> {
    let (body, content_type) = match what {
        Immutable::Batch(id) => (
            node.batch(id)?.map(|b| b.body().clone()),
            "application/octet-stream",
        ),
        Immutable::Filter(id) => (
            node.token_filter(id)?.map(|b| b.body().clone()),
            "application/octet-stream",
        ),
        Immutable::Export(name) => (node.export(name)?, "application/zip"),
    };
    Ok(body.map(|body| StaticFile {
        path,
        body,
        content_type,
        cache_control: IMMUTABLE,
    }))
}

/// JSON bytes as `axum::Json` writes them.
fn json<T: serde::Serialize>(value: &T) -> Bytes {
    // Plain structs with string keys: serialising cannot fail (as in `axum::Json`).
    Bytes::from(serde_json::to_vec(value).expect("plain data serialises"))
}
