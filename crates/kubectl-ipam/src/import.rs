//! `kubectl ipam import-calico -f FILE`: Calico IPPool and IPReservation manifests
//! (`projectcalico.org/v3`, and `crd.projectcalico.org/v1` as `kubectl get
//! ippools.crd.projectcalico.org -o yaml` prints them) converted to `rangepool.dev/v1`.
//!
//! The field names are the same; what changes is what the fields do, and the core's one list of
//! fields ([`SpecField`]) says it. Fields rangepool accepts but does not act on (it does not
//! program the data plane) are kept and listed on stderr, so nobody expects NAT or
//! encapsulation from them; fields rangepool does not have are dropped and listed; metadata the
//! API server sets is dropped. Every converted pool goes through the core's validation
//! ([`ipam::pool::Pool::parse`]); if one is refused, nothing is printed on stdout, so
//! `import-calico ... | kubectl apply -f -` never applies half a migration. Overlapping pools of
//! the file are found by the core's "older wins" rule ([`ipam::validate::overlapped_by`]).
//! IPReservations keep their one field, `reservedCIDRs`, each entry read as the controller reads
//! it ([`reservation`]). Pods and pod templates in the file that carry Calico annotations
//! rangepool does not honour (`ipAddrsNoIpam`, `floatingIPs`) are warned about
//! ([`unhonoured`]); everything else that is not a pool or a reservation is skipped.
//!
//! Exit status: 0 converted, 1 a pool or reservation is refused, 2 the file cannot be read or
//! holds neither.

mod reservation;
mod unhonoured;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;

use api::{IPPool, IPPoolSpec, IPReservation};
use ipam::pool::{Effect, PoolInput, SpecField};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Map, Value};

/// API versions read as Calico pools.
const CALICO_VERSIONS: [&str; 2] = ["projectcalico.org/v3", "crd.projectcalico.org/v1"];
/// Annotations that belong to the old object, not to the pool.
const DROPPED_ANNOTATIONS: [&str; 2] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    "projectcalico.org/metadata",
];

/// Exit status when a pool is refused.
const EXIT_REFUSED: u8 = 1;
/// Exit status when the file cannot be used.
const EXIT_INPUT: u8 = 2;

/// What `kubectl ipam import-calico` was asked.
#[derive(Debug, Clone)]
pub struct Args {
    /// The manifest file (`-` for stdin).
    pub file: PathBuf,
}

/// Something about one pool or reservation a person should know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remark {
    /// Kept, but rangepool does not act on it.
    Inert {
        /// The object, e.g. `pool payments`.
        pool: String,
        /// The field (and value).
        field: String,
        /// Why it does nothing here.
        why: &'static str,
    },
    /// Not in the output.
    Dropped {
        /// The object, e.g. `pool payments` or `IPReservation appliances`.
        pool: String,
        /// The field (and value).
        field: String,
        /// Why.
        why: String,
    },
    /// Converted, but it may not do what was meant.
    Warning {
        /// The object, e.g. `pool payments`.
        pool: String,
        /// What to look at.
        message: String,
    },
}

impl fmt::Display for Remark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Remark::Inert { pool, field, why } => {
                write!(f, "{pool}: {field}: kept, no effect here: {why}")
            }
            Remark::Dropped { pool, field, why } => write!(f, "{pool}: {field}: dropped: {why}"),
            Remark::Warning { pool, message } => write!(f, "{pool}: warning: {message}"),
        }
    }
}

/// A pool the core refuses, or a reservation with an entry that is not an address or a range,
/// with its reason label and message (which names the object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The object's name (empty when it has none).
    pub pool: String,
    /// `InvalidCIDR`, `InvalidField`, `InvalidReservedCIDR`, ...
    pub reason: &'static str,
    /// The message.
    pub message: String,
}

/// The result of a conversion.
#[derive(Debug, Clone, Default)]
pub struct Conversion {
    /// The converted pools, in file order.
    pub pools: Vec<IPPool>,
    /// The converted reservations, in file order.
    pub reservations: Vec<IPReservation>,
    /// What each pool or reservation lost or keeps without effect.
    pub remarks: Vec<Remark>,
    /// Pools and reservations refused.
    pub refused: Vec<Refused>,
    /// Documents that are not Calico pools or reservations, and why they were skipped.
    pub skipped: Vec<String>,
    /// Pods and pod templates carrying Calico annotations rangepool does not honour.
    pub unhonoured: Vec<String>,
}

/// The file cannot be used at all.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Reading failed.
    #[error("{0}: {1}")]
    Read(String, #[source] std::io::Error),
    /// Not YAML.
    #[error("{0}: not valid YAML or JSON: {1}")]
    Syntax(String, String),
    /// No pool or reservation in it. The warnings about pods found in it still count.
    #[error("{0}: holds no Calico IPPool or IPReservation (apiVersion {versions})", versions = CALICO_VERSIONS.join(" or "))]
    Empty(String, Vec<String>),
}

/// Runs the command; returns the exit status in the module docs.
pub fn run(args: &Args) -> ExitCode {
    let shown = args.file.display().to_string();
    let text = if shown == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(&args.file)
    };
    let conversion = text
        .map_err(|e| InputError::Read(shown.clone(), e))
        .and_then(|t| convert(&t, &shown));
    let conversion = match conversion {
        Ok(c) => c,
        Err(e) => {
            if let InputError::Empty(_, unhonoured) = &e {
                for w in unhonoured {
                    eprintln!("warning: {w}");
                }
            }
            eprintln!("kubectl ipam import-calico: {e}");
            return ExitCode::from(EXIT_INPUT);
        }
    };
    for s in &conversion.skipped {
        eprintln!("skipped: {s}");
    }
    for w in &conversion.unhonoured {
        eprintln!("warning: {w}");
    }
    for r in &conversion.remarks {
        eprintln!("{r}");
    }
    if !conversion.refused.is_empty() {
        for r in &conversion.refused {
            eprintln!("refused: {} ({})", r.message, r.reason);
        }
        eprintln!(
            "kubectl ipam import-calico: {} of {} object(s) refused; nothing printed, fix them and run again",
            conversion.refused.len(),
            conversion.refused.len() + conversion.pools.len() + conversion.reservations.len()
        );
        return ExitCode::from(EXIT_REFUSED);
    }
    match render_all(&conversion, &shown) {
        Ok(out) => {
            crate::print(&out);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kubectl ipam import-calico: cannot write YAML: {e}");
            ExitCode::from(EXIT_INPUT)
        }
    }
}

/// Converts every Calico IPPool and IPReservation in `text` (YAML documents or JSON, `List`s
/// included).
pub fn convert(text: &str, file: &str) -> Result<Conversion, InputError> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text)
        .map_err(|e| InputError::Syntax(file.to_owned(), e.to_string()))?;
    let mut out = Conversion::default();
    let mut found = false;
    for doc in docs {
        walk(doc, &mut out, &mut found);
    }
    if !found {
        return Err(InputError::Empty(file.to_owned(), out.unhonoured));
    }
    overlaps(&mut out);
    Ok(out)
}

fn walk(doc: Value, out: &mut Conversion, found: &mut bool) {
    if doc.is_null() {
        return;
    }
    let text = |key: &str| {
        doc.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let (kind, version) = (text("kind"), text("apiVersion"));
    let name = doc
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if kind.ends_with("List")
        && let Some(items) = doc.get("items").and_then(Value::as_array)
    {
        for item in items.clone() {
            walk(item, out, found);
        }
        return;
    }
    let calico = CALICO_VERSIONS.contains(&version.as_str());
    if kind == "IPReservation" && calico {
        *found = true;
        match reservation::convert(&doc, &name, &mut out.remarks) {
            Ok(r) => out.reservations.push(r),
            Err(r) => out.refused.push(r),
        }
        return;
    }
    if kind != "IPPool" || !calico {
        out.unhonoured.extend(unhonoured::find(&doc));
        out.skipped.push(format!(
            "{} {name:?} (apiVersion {version:?}) is not a Calico IPPool or IPReservation",
            if kind.is_empty() { "(no kind)" } else { &kind }
        ));
        return;
    }
    *found = true;
    match pool(&doc, &name, &mut out.remarks) {
        Ok(p) => out.pools.push(p),
        Err(r) => out.refused.push(r),
    }
}

/// One Calico pool converted and validated.
fn pool(doc: &Value, name: &str, remarks: &mut Vec<Remark>) -> Result<IPPool, Refused> {
    let refuse = |reason, message: String| Refused {
        pool: name.to_owned(),
        reason,
        message,
    };
    if name.is_empty() {
        return Err(refuse("InvalidField", "a pool has no metadata.name".into()));
    }
    let dropped = |field: String, why: String| Remark::Dropped {
        pool: format!("pool {name}"),
        field,
        why,
    };
    let empty = Map::new();
    let spec_in = doc.get("spec").and_then(Value::as_object).unwrap_or(&empty);
    let mut spec = Map::new();
    for (key, value) in spec_in {
        let shown = format!("{key} ({})", compact(value));
        let effect = SpecField::named(key).map(SpecField::effect);
        if effect.is_some() {
            spec.insert(key.clone(), value.clone());
        }
        match effect {
            Some(Effect::Allocation) => {}
            Some(Effect::Inert) => remarks.push(Remark::Inert {
                pool: format!("pool {name}"),
                field: shown,
                why: "rangepool assigns addresses and does not program the data plane (NAT, encapsulation, BGP)",
            }),
            Some(Effect::Uses) => allowed_uses(name, value, remarks),
            None => remarks.push(dropped(shown, dropped_because(key))),
        }
    }
    if doc.get("status").is_some() {
        remarks.push(dropped(
            "status".into(),
            "written by the rangepool controller".into(),
        ));
    }
    let metadata = metadata(doc, name, &dropped, remarks);
    let spec: IPPoolSpec = serde_json::from_value(Value::Object(spec))
        .map_err(|e| refuse("InvalidField", format!("pool {name}: spec: {e}")))?;
    let converted = IPPool {
        metadata,
        spec,
        status: None,
    };
    ipam::pool::Pool::parse(&converted.to_input())
        .map_err(|e| refuse(e.reason(), e.to_string()))?;
    Ok(converted)
}

/// Why a spec field rangepool does not know is dropped.
fn dropped_because(key: &str) -> String {
    match key {
        "awsSubnetID" => "AWS-backed pools (secondary addresses on the node's ENI) are a Calico feature rangepool does not have".to_owned(),
        "ipip" | "nat-outgoing" => format!(
            "a Calico API v1 field that Calico itself refuses in v3; use {}",
            if key == "ipip" { "ipipMode" } else { "natOutgoing" }
        ),
        _ => "not an IPPool field rangepool knows".to_owned(),
    }
}

/// Name, labels and annotations; the rest of the metadata belongs to the old object.
fn metadata(
    doc: &Value,
    name: &str,
    dropped: &dyn Fn(String, String) -> Remark,
    remarks: &mut Vec<Remark>,
) -> ObjectMeta {
    let strings = |key: &str| -> Option<BTreeMap<String, String>> {
        let map: BTreeMap<String, String> = doc
            .pointer(&format!("/metadata/{key}"))
            .and_then(Value::as_object)?
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
            .collect();
        Some(map)
    };
    let mut annotations = strings("annotations").unwrap_or_default();
    for key in DROPPED_ANNOTATIONS {
        if annotations.remove(key).is_some() {
            remarks.push(dropped(
                format!("annotation {key}"),
                "it describes the Calico object, not the pool".into(),
            ));
        }
    }
    let server_set: Vec<&str> = doc
        .get("metadata")
        .and_then(Value::as_object)
        .map(|m| {
            m.keys()
                .map(String::as_str)
                .filter(|k| !matches!(*k, "name" | "labels" | "annotations"))
                .collect()
        })
        .unwrap_or_default();
    if !server_set.is_empty() {
        remarks.push(dropped(
            format!("metadata {}", server_set.join(", ")),
            "set by the API server for the old object".into(),
        ));
    }
    ObjectMeta {
        name: Some(name.to_owned()),
        labels: strings("labels").filter(|l| !l.is_empty()),
        annotations: Some(annotations).filter(|a| !a.is_empty()),
        ..Default::default()
    }
}

fn allowed_uses(name: &str, value: &Value, remarks: &mut Vec<Remark>) {
    let uses: Vec<&str> = value
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for u in &uses {
        if matches!(*u, "Tunnel" | "LoadBalancer") {
            remarks.push(Remark::Inert {
                pool: format!("pool {name}"),
                field: format!("allowedUses {u}"),
                why: "rangepool gives addresses to pods only (no tunnel or load-balancer addresses)",
            });
        }
    }
    if !uses.is_empty() && !uses.contains(&"Workload") {
        remarks.push(Remark::Warning {
            pool: format!("pool {name}"),
            message: "allowedUses lacks Workload, so this pool gives no pod an address here".into(),
        });
    }
}

/// Pools of one file that overlap: the newer would not be allocatable (older wins, as the
/// core's validation decides it).
fn overlaps(out: &mut Conversion) {
    let inputs: Vec<PoolInput> = out.pools.iter().map(IPPool::to_input).collect();
    for (loser, winner) in ipam::validate::overlapped_by(&inputs, None)
        .into_iter()
        .enumerate()
    {
        let Some(winner) = winner else { continue };
        let (a, b) = (&inputs[winner], &inputs[loser]);
        out.remarks.push(Remark::Warning {
            pool: format!("pool {}", b.name),
            message: format!(
                "its range {} overlaps pool {} ({}); of two overlapping pools only the older one gives addresses",
                shown_cidr(&b.cidr),
                a.name,
                shown_cidr(&a.cidr)
            ),
        });
    }
}

/// A pool's range as the core reads it (every pool here has passed validation).
fn shown_cidr(cidr: &str) -> String {
    ipam::cidr::parse_strict(cidr).map_or_else(|_| cidr.to_owned(), |c| c.to_string())
}

fn compact(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The pools, then the reservations, as YAML documents, with a header naming the source.
pub fn render_all(
    conversion: &Conversion,
    source: &str,
) -> Result<String, serde_saphyr::SerializeError> {
    let mut out = render(&conversion.pools, source)?;
    for (i, r) in conversion.reservations.iter().enumerate() {
        if i > 0 || !conversion.pools.is_empty() {
            out.push_str("---\n");
        }
        out.push_str(&serde_saphyr::to_string(r)?);
    }
    Ok(out)
}

/// The pools as YAML documents, with a header naming the source.
pub fn render(pools: &[IPPool], source: &str) -> Result<String, serde_saphyr::SerializeError> {
    let mut out = format!("# Converted from Calico by `kubectl ipam import-calico -f {source}`.\n");
    for (i, p) in pools.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&serde_saphyr::to_string(p)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
