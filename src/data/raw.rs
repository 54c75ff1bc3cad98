//! What the readers produce: interactions and texts keyed by the dataset's own ids.

use std::collections::HashMap;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq)]
pub struct RawInteraction {
    pub user: String,
    pub item: String,
    pub rating: Option<f64>,
    pub timestamp: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ItemText {
    pub title: String,
    /// Brand, categories, genres or a description, as one line of text.
    pub description: String,
}

#[derive(Debug, Default)]
pub struct RawData {
    /// In file order (the order of first appearance defines the dense ids).
    pub interactions: Vec<RawInteraction>,
    pub items: HashMap<String, ItemText>,
    /// User text (MovieLens tags, RecBole user features).
    pub users: HashMap<String, String>,
    /// Review text per (user, item).
    pub reviews: HashMap<(String, String), String>,
    /// Every file read.
    pub files: Vec<PathBuf>,
}
