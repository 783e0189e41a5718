//! Splitting a batch by a rendered key (an S3 object key, a log group and stream), so one
//! request or object never mixes what a template separates. Events whose key cannot be
//! rendered fail alone, permanently, with the reason.

use std::collections::HashMap;

use super::driver::{ItemError, SendError};
use crate::core::event::Event;

/// Groups of event indices by rendered key, in order of first appearance, and the events
/// that could not be keyed.
pub fn by_key<E: std::fmt::Display>(
    events: &[Event],
    mut render: impl FnMut(&Event, &mut String) -> Result<(), E>,
) -> (Vec<(String, Vec<usize>)>, Vec<ItemError>) {
    let mut errors = Vec::new();
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut key = String::new();
    for (i, e) in events.iter().enumerate() {
        if let Err(m) = render(e, &mut key) {
            errors.push(ItemError {
                index: i,
                error: SendError::Permanent(m.to_string()),
            });
            continue;
        }
        let g = match index.get(&key) {
            Some(g) => *g,
            None => {
                index.insert(key.clone(), groups.len());
                groups.push((key.clone(), Vec::new()));
                groups.len() - 1
            }
        };
        groups[g].1.push(i);
    }
    (groups, errors)
}
