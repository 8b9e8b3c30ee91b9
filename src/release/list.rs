//! `RELEASES=list`: the recorded releases as a table, newest first.

use super::{Release, State, format_time};

/// The table: id, time, commit, kind, uploaded / deleted counts, keys, restorable, and which
/// one is live (the newest recorded). Pure.
pub(crate) fn table(state: &State) -> Vec<String> {
    let header = [
        "", "RELEASE", "TIME", "COMMIT", "KIND", "UPLOADED", "DELETED", "OBJECTS", "ROLLBACK",
    ];
    let live = state.releases.len().checked_sub(1);
    let rows: Vec<[String; 9]> = state
        .releases
        .iter()
        .enumerate()
        .rev()
        .map(|(i, r)| row(r, Some(i) == live))
        .collect();
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = vec![line(&header.map(str::to_string))];
    out.extend(rows.iter().map(|r| line(r)));
    out
}

fn row(r: &Release, live: bool) -> [String; 9] {
    let kind = match &r.rollback_of {
        Some(of) => format!("rollback to {of}"),
        None => r.kind.clone(),
    };
    [
        if live { "*" } else { "" }.to_string(),
        r.id.clone(),
        format_time(r.time),
        r.commit
            .as_deref()
            .map(|c| c.chars().take(12).collect())
            .unwrap_or_else(|| "-".into()),
        kind,
        r.uploaded.to_string(),
        r.deleted.to_string(),
        r.objects.to_string(),
        if r.versioned {
            "yes"
        } else {
            "no (no versioning)"
        }
        .to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_first_with_the_live_one_marked() {
        let rel = |id: &str, time: i64, rollback_of: Option<&str>, versioned: bool| Release {
            id: id.into(),
            time,
            commit: Some("0123456789abcdef0123".into()),
            kind: if rollback_of.is_some() {
                "rollback"
            } else {
                "deploy"
            }
            .into(),
            rollback_of: rollback_of.map(str::to_string),
            uploaded: 3,
            reheadered: 0,
            deleted: 1,
            unchanged: 2,
            objects: 5,
            manifest: String::new(),
            versioned,
            content_etags: false,
        };
        let state = State {
            releases: vec![
                rel("41", 0, None, false),
                rel("42", 86_400, None, true),
                rel("43", 90_000, Some("41"), true),
            ],
            ..State::default()
        };
        let t = table(&state);
        assert_eq!(t.len(), 4);
        assert!(t[0].starts_with("   RELEASE  TIME"), "{t:?}");
        assert!(t[1].starts_with("*  43 "), "{t:?}");
        assert!(t[1].contains("rollback to 41"), "{t:?}");
        assert!(t[1].contains("0123456789ab "), "{t:?}");
        assert!(t[2].contains("1970-01-02 00:00 UTC"), "{t:?}");
        assert!(t[3].ends_with("no (no versioning)"), "{t:?}");
    }
}
