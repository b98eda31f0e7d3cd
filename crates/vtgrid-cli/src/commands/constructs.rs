//! `vtgrid category ...` and `vtgrid class ...`.

use std::collections::BTreeMap;

use vtgrid_proto::pb;

use crate::args::{CategoryCommand, ClassCommand, Global};
use crate::client::{self, print_json, CliError};

pub async fn run_category(global: &Global, cmd: CategoryCommand) -> Result<(), CliError> {
    let mut admin = client::admin(&global.endpoint).await?;
    match cmd {
        CategoryCommand::Define {
            id,
            name,
            fast_ready,
        } => {
            let definition = pb::CategoryDefinition {
                category: id.clone(),
                name,
                fast_ready,
            };
            admin
                .define_category(pb::DefineCategoryRequest {
                    definition: Some(definition),
                })
                .await?;
            println!("category {id} defined");
        }
        CategoryCommand::List => {
            let list = admin
                .list_categories(pb::ListCategoriesRequest {
                    consistency: global.consistency(),
                })
                .await?
                .into_inner()
                .categories;
            if global.json {
                let v: Vec<_> = list
                    .iter()
                    .map(|c| serde_json::json!({"category": c.category, "name": c.name, "fast_ready": c.fast_ready}))
                    .collect();
                print_json(&serde_json::Value::Array(v));
            } else {
                for c in list {
                    println!(
                        "{}  {:<10} {}",
                        c.category,
                        c.name,
                        if c.fast_ready {
                            "fast-ready"
                        } else {
                            "private"
                        }
                    );
                }
            }
        }
    }
    Ok(())
}

pub async fn run_class(global: &Global, cmd: ClassCommand) -> Result<(), CliError> {
    let mut admin = client::admin(&global.endpoint).await?;
    match cmd {
        ClassCommand::Define {
            name,
            copy_modes,
            on_sync_failure,
        } => {
            let mut modes = BTreeMap::new();
            for item in &copy_modes {
                let (cluster, vector) = item.split_once('=').ok_or_else(|| {
                    CliError::Usage(format!(
                        "--copy-modes {item:?}: write CLUSTER=VECTOR, e.g. C0=RND"
                    ))
                })?;
                let n: u32 = cluster
                    .trim_start_matches(['C', 'c'])
                    .parse()
                    .map_err(|_| {
                        CliError::Usage(format!("--copy-modes {item:?}: cluster must be C0..C7"))
                    })?;
                modes.insert(n, vector.to_string());
            }
            let class = pb::ManagementClass {
                name: name.clone(),
                copy_modes: modes,
                on_sync_failure,
            };
            admin
                .define_management_class(pb::DefineManagementClassRequest {
                    management_class: Some(class),
                })
                .await?;
            println!("management class {name} defined");
        }
        ClassCommand::List => {
            let list = admin
                .list_management_classes(pb::ListManagementClassesRequest {
                    consistency: global.consistency(),
                })
                .await?
                .into_inner()
                .classes;
            if global.json {
                let v: Vec<_> = list
                    .iter()
                    .map(|c| serde_json::json!({"name": c.name, "copy_modes": c.copy_modes, "on_sync_failure": c.on_sync_failure}))
                    .collect();
                print_json(&serde_json::Value::Array(v));
            } else {
                for c in list {
                    let mut modes: Vec<_> = c.copy_modes.iter().collect();
                    modes.sort();
                    let modes: Vec<String> =
                        modes.iter().map(|(k, v)| format!("C{k}={v}")).collect();
                    println!(
                        "{:<8}  {}  on_sync_failure={}",
                        c.name,
                        modes.join(" "),
                        c.on_sync_failure
                    );
                }
            }
        }
    }
    Ok(())
}
