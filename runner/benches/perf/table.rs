//! A row of the table (kiln's figure, the reference's, the goal) and the
//! table printed as aligned text and as Markdown.

/// What a figure counts.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Unit {
    Secs,
    Millis,
    MsPerFile,
    MsPerStep,
    Calls,
}

impl Unit {
    fn show(self, v: f64) -> String {
        match self {
            Unit::Secs => format!("{v:.2} s"),
            Unit::Millis => format!("{v:.1} ms"),
            Unit::MsPerFile => format!("{v:.4} ms/file"),
            Unit::MsPerStep => format!("{v:.3} ms/step"),
            Unit::Calls => format!("{} calls", thousands(v.round() as usize)),
        }
    }
}

/// `n` with a comma every three digits: 50,000.
pub(crate) fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The goal for a row.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Goal {
    /// kiln/reference at most this.
    Within(f64),
    /// kiln/reference under 1.
    Faster,
    /// kiln's figure at most this (in the row's unit).
    AtMost(f64),
    /// kiln's figure under this (in the row's unit).
    Under(f64),
    None,
}

/// The reference figure.
#[derive(Clone, Debug)]
pub(crate) enum Reference {
    /// The row has none.
    Absent,
    Value(f64),
    /// It could not be measured: why.
    Missing(String),
}

#[derive(Clone, Debug)]
pub(crate) struct Row {
    pub(crate) name: String,
    pub(crate) unit: Unit,
    pub(crate) kiln: Result<f64, String>,
    pub(crate) reference: Reference,
    pub(crate) goal: Goal,
}

impl Row {
    pub(crate) fn new(name: &str, unit: Unit, goal: Goal) -> Row {
        Row {
            name: name.to_string(),
            unit,
            kiln: Err("not measured".into()),
            reference: Reference::Absent,
            goal,
        }
    }

    /// A row nothing could be measured for.
    pub(crate) fn failed(name: &str, why: &str) -> Row {
        Row {
            kiln: Err(why.to_string()),
            ..Row::new(name, Unit::Secs, Goal::None)
        }
    }

    pub(crate) fn kiln(mut self, v: Result<f64, String>) -> Row {
        self.kiln = v;
        self
    }

    pub(crate) fn reference(mut self, v: Result<f64, String>) -> Row {
        self.reference = match v {
            Ok(v) => Reference::Value(v),
            Err(e) => Reference::Missing(e),
        };
        self
    }

    fn ratio(&self) -> Option<f64> {
        match (&self.kiln, &self.reference) {
            (Ok(k), Reference::Value(r)) if *r > 0.0 => Some(k / r),
            _ => None,
        }
    }

    fn goal_text(&self) -> String {
        match self.goal {
            Goal::Within(x) => format!("<= {x:.2}x"),
            Goal::Faster => "< 1.00x".into(),
            Goal::AtMost(v) => format!("<= {}", self.unit.show(v)),
            Goal::Under(v) => format!("< {}", self.unit.show(v)),
            Goal::None => "-".into(),
        }
    }

    fn met(&self) -> &'static str {
        let ok = match (self.goal, self.ratio(), &self.kiln) {
            (Goal::Within(x), Some(r), _) => r <= x,
            (Goal::Faster, Some(r), _) => r < 1.0,
            (Goal::AtMost(v), _, Ok(k)) => *k <= v,
            (Goal::Under(v), _, Ok(k)) => *k < v,
            (Goal::None, _, _) => return "-",
            _ => return "?",
        };
        if ok { "yes" } else { "NO" }
    }

    /// The cells: comparison, kiln, reference, ratio, goal, met.
    fn cells(&self) -> [String; 6] {
        let kiln = match &self.kiln {
            Ok(v) => self.unit.show(*v),
            Err(e) => format!("n/a ({e})"),
        };
        let reference = match &self.reference {
            Reference::Absent => "-".into(),
            Reference::Value(v) => self.unit.show(*v),
            Reference::Missing(e) => format!("n/a ({e})"),
        };
        let ratio = self.ratio().map_or("-".into(), |r| format!("{r:.2}x"));
        [
            self.name.clone(),
            kiln,
            reference,
            ratio,
            self.goal_text(),
            self.met().into(),
        ]
    }
}

const HEADER: [&str; 6] = ["comparison", "kiln", "reference", "kiln/ref", "goal", "met"];

/// One row as a line, for progress on stderr.
pub(crate) fn plain_line(row: &Row) -> String {
    let c = row.cells();
    format!(
        "{}: kiln {}, reference {}, ratio {}, goal {} ({})",
        c[0], c[1], c[2], c[3], c[4], c[5]
    )
}

/// The table with aligned columns.
pub(crate) fn plain(rows: &[Row]) -> String {
    let cells: Vec<[String; 6]> = rows.iter().map(Row::cells).collect();
    let mut width = HEADER.map(|h| h.chars().count());
    for r in &cells {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |r: [&str; 6]| {
        let mut s = String::new();
        for (i, (c, w)) in r.iter().zip(width).enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            s.push_str(c);
            if i < 5 {
                s.push_str(&" ".repeat(w - c.chars().count()));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = line(HEADER);
    out.push('\n');
    out.push_str(&"-".repeat(width.iter().sum::<usize>() + 10));
    for r in &cells {
        out.push('\n');
        out.push_str(&line(r.each_ref().map(String::as_str)));
    }
    out
}

/// The table in Markdown.
pub(crate) fn markdown(rows: &[Row]) -> String {
    let esc = |s: &str| s.replace('|', "\\|");
    let mut out = format!("| {} |\n|---|---|---|---|---|---|", HEADER.join(" | "));
    for r in rows {
        let c = r.cells().map(|c| esc(&c));
        out.push_str(&format!("\n| {} |", c.join(" | ")));
    }
    out
}
