//! Grants: which dicts and volumes a function may open by name. A leaf
//! that the capability modules and the container share, so neither names
//! the other for it.

/// Which names of one kind (dicts or volumes) a function may open.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Grant {
    /// Everything: a component called directly by its owner (`vessel call
    /// COMPONENT`), with no manifest to narrow it.
    #[default]
    All,
    /// Only these names.
    Only(std::collections::BTreeSet<String>),
}

impl Grant {
    pub fn allows(&self, name: &str) -> bool {
        match self {
            Grant::All => true,
            Grant::Only(names) => names.contains(name),
        }
    }
}

/// The dicts and volumes a function may open by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    pub dicts: Grant,
    pub volumes: Grant,
}
