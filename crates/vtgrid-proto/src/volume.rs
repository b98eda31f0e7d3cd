//! Volumes and constructs on the wire.

use vtgrid_core::{ConstructName, Constructs, DomainError, VolumeRecord};

use crate::pb;

/// The wire form of a catalog record; `mounted` is the serving cluster's knowledge.
pub fn volume_to_pb(r: &VolumeRecord, mounted: bool) -> pb::Volume {
    pb::Volume {
        volser: r.volser.to_string(),
        owner: u32::from(r.token.owner.get()),
        epoch: r.token.epoch.0,
        category: r.category.to_string(),
        constructs: Some(constructs_to_pb(&r.constructs)),
        version: r.version,
        size: r.size,
        digest: r.digest.to_hex(),
        consistent_at: r
            .consistent_at
            .iter()
            .map(|(c, v)| (u32::from(c.get()), *v))
            .collect(),
        mounted,
        copy_modes: r
            .copy_modes
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
    }
}

pub fn constructs_to_pb(c: &Constructs) -> pb::Constructs {
    let name = |n: &Option<ConstructName>| n.as_ref().map(|n| n.to_string()).unwrap_or_default();
    pb::Constructs {
        management_class: name(&c.management_class),
        storage_class: name(&c.storage_class),
        data_class: name(&c.data_class),
        storage_group: name(&c.storage_group),
    }
}

/// Empty fields mean "not given".
pub fn constructs_from_pb(c: &pb::Constructs) -> Result<Constructs, DomainError> {
    let name = |s: &str| {
        if s.is_empty() {
            Ok(None)
        } else {
            s.parse().map(Some)
        }
    };
    Ok(Constructs {
        management_class: name(&c.management_class)?,
        storage_class: name(&c.storage_class)?,
        data_class: name(&c.data_class)?,
        storage_group: name(&c.storage_group)?,
    })
}
