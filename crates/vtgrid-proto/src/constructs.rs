//! Category definitions and management classes on the wire.

use std::collections::BTreeMap;

use vtgrid_core::{CategoryDefinition, ClusterId, DomainError, ManagementClass};

use crate::pb;

pub fn category_to_pb(d: &CategoryDefinition) -> pb::CategoryDefinition {
    pb::CategoryDefinition {
        category: d.category.to_string(),
        name: d.name.clone(),
        fast_ready: d.fast_ready,
    }
}

pub fn category_from_pb(d: &pb::CategoryDefinition) -> Result<CategoryDefinition, DomainError> {
    Ok(CategoryDefinition {
        category: d.category.parse()?,
        name: d.name.clone(),
        fast_ready: d.fast_ready,
    })
}

pub fn class_to_pb(mc: &ManagementClass) -> pb::ManagementClass {
    pb::ManagementClass {
        name: mc.name.to_string(),
        copy_modes: mc
            .vectors
            .iter()
            .map(|(c, v)| (u32::from(c.get()), v.to_string()))
            .collect(),
        on_sync_failure: mc.on_sync_failure.as_str().to_string(),
    }
}

pub fn class_from_pb(mc: &pb::ManagementClass) -> Result<ManagementClass, DomainError> {
    let mut vectors = BTreeMap::new();
    for (cluster, vector) in &mc.copy_modes {
        let id = u8::try_from(*cluster)
            .map_err(|_| DomainError::InvalidClusterId {
                input: i64::from(*cluster),
                max: 15,
            })
            .and_then(ClusterId::new)?;
        vectors.insert(id, vector.parse()?);
    }
    Ok(ManagementClass {
        name: mc.name.parse()?,
        vectors,
        on_sync_failure: mc.on_sync_failure.parse()?,
    })
}
