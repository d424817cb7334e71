//! One Calico `IPReservation` converted: its one field, `reservedCIDRs`, kept as written, every
//! entry read as the controller reads it ([`api::reservation::parse_reserved`]). The controller
//! ignores an entry that is neither an address nor a strictly masked range (the schema cannot
//! refuse it), so such a reservation is refused here instead: applied, it would keep less out
//! of allocation than the admin meant.

use api::{IPReservation, IPReservationSpec};
use serde_json::{Map, Value};

use super::{Refused, Remark, compact, metadata};

/// The reservation named `name` in `doc`, or why it is refused. What it loses goes to
/// `remarks`.
pub(super) fn convert(
    doc: &Value,
    name: &str,
    remarks: &mut Vec<Remark>,
) -> Result<IPReservation, Refused> {
    let refuse = |reason, message: String| Refused {
        pool: name.to_owned(),
        reason,
        message,
    };
    if name.is_empty() {
        return Err(refuse(
            "InvalidField",
            "an IPReservation has no metadata.name".into(),
        ));
    }
    let object = format!("IPReservation {name}");
    let dropped = |field: String, why: String| Remark::Dropped {
        pool: object.clone(),
        field,
        why,
    };
    let empty = Map::new();
    let spec = doc.get("spec").and_then(Value::as_object).unwrap_or(&empty);
    let mut entries = Vec::new();
    for (key, value) in spec {
        if key != "reservedCIDRs" {
            remarks.push(dropped(
                format!("{key} ({})", compact(value)),
                "not an IPReservation field rangepool knows".into(),
            ));
            continue;
        }
        let Some(list) = value
            .as_array()
            .and_then(|l| l.iter().map(Value::as_str).collect::<Option<Vec<&str>>>())
        else {
            return Err(refuse(
                "InvalidField",
                format!(
                    "{object}: spec.reservedCIDRs is {}, not a list of addresses and ranges",
                    compact(value)
                ),
            ));
        };
        entries = list.into_iter().map(str::to_owned).collect();
    }
    if doc.get("status").is_some() {
        remarks.push(dropped(
            "status".into(),
            "an IPReservation has no status".into(),
        ));
    }
    let bad: Vec<String> = entries
        .iter()
        .filter_map(|e| api::reservation::parse_reserved(e).err())
        .collect();
    if !bad.is_empty() {
        return Err(refuse(
            "InvalidReservedCIDR",
            format!(
                "{object}: {}; the controller would ignore {}, keeping less out of allocation than meant",
                bad.join("; "),
                if bad.len() == 1 { "it" } else { "them" }
            ),
        ));
    }
    Ok(IPReservation {
        metadata: metadata(doc, name, &dropped, remarks),
        spec: IPReservationSpec {
            reserved_cidrs: entries,
        },
    })
}
