//! The top level: dispatches blocks to their parsers, then checks cross references.

use crate::checker::CheckerKind;
use crate::model::{Config, VsTarget};
use crate::parse_global::{parse_global_defs, parse_ssl, parse_track_file};
use crate::parse_lvs::{parse_group, parse_virtual_server};
use crate::parse_vrrp::{parse_vrrp_instance, parse_vrrp_script, parse_vrrp_sync_group};
use crate::tree::Statement;
use crate::values::Ctx;
use std::collections::HashSet;

/// Top-level keywords of keepalived 2.2 that rvs does not use (BFD, static routes, ...).
const OTHER_TOP: &[&str] = &[
    "bfd_instance",
    "static_ipaddress",
    "static_routes",
    "static_rules",
    "linkbeat_interfaces",
    "vrrp_track_process",
    "track_process",
    "garp_group",
    "vrrp_garp_group",
];

/// Turns the statement tree into a [`Config`], recording problems in `ctx`.
pub fn parse_config(ctx: &mut Ctx<'_>, statements: &[Statement], config: &mut Config) {
    for st in statements {
        match st.keyword.as_str() {
            "global_defs" => parse_global_defs(ctx, st, &mut config.global),
            "SSL" => config.ssl = parse_ssl(ctx, st),
            "track_file" | "vrrp_track_file" => {
                config.track_files.extend(parse_track_file(ctx, st))
            }
            "virtual_server_group" => config.groups.extend(parse_group(ctx, st)),
            "virtual_server" => config.virtual_servers.extend(parse_virtual_server(ctx, st)),
            "vrrp_script" => config.vrrp_scripts.extend(parse_vrrp_script(ctx, st)),
            "vrrp_instance" => config.vrrp_instances.extend(parse_vrrp_instance(ctx, st)),
            "vrrp_sync_group" => config
                .vrrp_sync_groups
                .extend(parse_vrrp_sync_group(ctx, st)),
            k if OTHER_TOP.contains(&k) => ctx.ignored(st),
            _ => ctx.unknown(st, "the top level"),
        }
    }
    validate(ctx, config);
}

fn validate(ctx: &mut Ctx<'_>, c: &Config) {
    let groups: HashSet<&str> = c.groups.iter().map(|g| g.name.as_str()).collect();
    let files: HashSet<&str> = c.track_files.iter().map(|t| t.name.as_str()).collect();
    let mut seen = HashSet::new();
    for vs in &c.virtual_servers {
        if let VsTarget::Group(g) = &vs.target {
            if !groups.contains(g.as_str()) {
                ctx.error(
                    &vs.span,
                    format!("virtual_server group {g}: no virtual_server_group named '{g}'"),
                );
            }
        }
        if !seen.insert((vs.target.clone(), vs.protocol)) {
            ctx.error(
                &vs.span,
                "virtual_server: the same virtual server is defined twice",
            );
        }
        let mut rs_seen = HashSet::new();
        for rs in &vs.real_servers {
            if !rs_seen.insert((rs.addr, rs.port)) {
                ctx.error(
                    &rs.span,
                    format!(
                        "real_server {} {}: defined twice in this virtual_server",
                        rs.addr, rs.port
                    ),
                );
            }
            for ck in &rs.checkers {
                if let CheckerKind::File(f) = &ck.kind {
                    if !files.contains(f.track_file.as_str()) {
                        ctx.error(
                            &ck.span,
                            format!("FILE_CHECK: no track_file named '{}'", f.track_file),
                        );
                    }
                }
            }
        }
    }
    let scripts: HashSet<&str> = c.vrrp_scripts.iter().map(|s| s.name.as_str()).collect();
    let mut names = HashSet::new();
    let mut vrids = HashSet::new();
    for inst in &c.vrrp_instances {
        if !names.insert(inst.name.as_str()) {
            ctx.error(
                &inst.span,
                format!("vrrp_instance {}: defined twice", inst.name),
            );
        }
        if !vrids.insert((inst.interface.as_str(), inst.virtual_router_id)) {
            ctx.error(
                &inst.span,
                format!(
                    "vrrp_instance {}: virtual_router_id {} is already used on interface {}",
                    inst.name, inst.virtual_router_id, inst.interface
                ),
            );
        }
        for t in &inst.track_script {
            if !scripts.contains(t.name.as_str()) {
                ctx.warn(
                    &inst.span,
                    format!(
                        "vrrp_instance {}: track_script '{}' is not defined",
                        inst.name, t.name
                    ),
                );
            }
        }
    }
    for g in &c.vrrp_sync_groups {
        for m in &g.group {
            if !names.contains(m.as_str()) {
                ctx.error(
                    &g.span,
                    format!("vrrp_sync_group {}: no vrrp_instance named '{m}'", g.name),
                );
            }
        }
    }
}
