//! Metric labels as types: every series keyed by a label enum is
//! registered once per value at start-up, and counting is an index. Kept
//! apart from [`crate::telemetry::metrics`] (which registers them) so that the modules
//! whose enums are labels depend on this alone.

use metrics::Counter;

/// A closed set of label values: every metric keyed by one registers a
/// series per value at start-up, and counting is an index into them. No
/// label is ever made from a string at run time.
pub trait Label: Copy + Eq + 'static {
    /// Every value that is counted.
    const ALL: &'static [Self];
    /// The label value.
    fn label(self) -> &'static str;
}

/// One counter per value of `L`.
pub struct Counters<L> {
    by: Vec<Counter>,
    _label: std::marker::PhantomData<L>,
}

impl<L: Label> Counters<L> {
    /// The counter of `value`; values outside `L::ALL` are not counted.
    #[inline]
    pub fn get(&self, value: L) -> Option<&Counter> {
        L::ALL
            .iter()
            .position(|v| *v == value)
            .and_then(|i| self.by.get(i))
    }

    /// Counts one `value`.
    #[inline]
    pub fn increment(&self, value: L) {
        if let Some(c) = self.get(value) {
            c.increment(1);
        }
    }
}

impl<L: Label> Counters<L> {
    /// Counters that count nothing, for series a route does not have.
    pub fn noop() -> Counters<L> {
        Counters {
            by: L::ALL.iter().map(|_| Counter::noop()).collect(),
            _label: std::marker::PhantomData,
        }
    }
}

impl<L> Counters<L> {
    /// Counters for `L::ALL`, in its order.
    pub fn new(by: Vec<Counter>) -> Counters<L> {
        Counters {
            by,
            _label: std::marker::PhantomData,
        }
    }
}

impl<L> std::fmt::Debug for Counters<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counters").finish_non_exhaustive()
    }
}

impl<L> Clone for Counters<L> {
    fn clone(&self) -> Self {
        Counters {
            by: self.by.clone(),
            _label: std::marker::PhantomData,
        }
    }
}

/// Declares a label enum once: each variant beside its label value. The
/// enum, its [`Label::ALL`] (every variant, in order) and its
/// [`Label::label`] follow, so a variant cannot be left uncounted.
///
/// `pub enum Name by path::to::fn { Variant, … }` declares an enum whose
/// labels come from a function of the value (an error whose label is its
/// code in another table). For an enum declared elsewhere,
/// `label_enum! { impl Name { Variant = "label", … } }` lists its values,
/// with an optional `uncounted { … }` part for values that have a label
/// but no series; its match has no wildcard, so a variant left out of the
/// list does not compile.
///
/// ```ignore
/// label_enum! {
///     /// How a resync went.
///     pub enum Resync {
///         /// The whole set.
///         Full = "full",
///         /// A resync that failed.
///         Failed = "failed",
///     }
/// }
/// ```
macro_rules! label_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $label:literal, )+
        }
    ) => {
        label_enum! { @enum $(#[$meta])* $vis $name { $( $(#[$vmeta])* $variant, )+ } }
        label_enum! { impl $name { $( $variant = $label, )+ } }
    };
    // Labels given by a function of the value (`fn($name) -> &'static
    // str`), for an enum whose label is another table's (an error code).
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident by $by:path {
            $( $(#[$vmeta:meta])* $variant:ident, )+
        }
    ) => {
        label_enum! { @enum $(#[$meta])* $vis $name { $( $(#[$vmeta])* $variant, )+ } }
        impl $crate::telemetry::labels::Label for $name {
            const ALL: &'static [$name] = &[$($name::$variant),+];
            fn label(self) -> &'static str {
                $by(self)
            }
        }
    };
    // An enum declared elsewhere, its values listed here; those after
    // `uncounted` have a label but are left out of `ALL`. The match has no
    // wildcard, so a variant missing from the list does not compile.
    (
        impl $name:ident {
            $( $variant:ident = $label:literal, )+
        } $( uncounted { $( $other:ident = $olabel:literal, )+ } )?
    ) => {
        impl $crate::telemetry::labels::Label for $name {
            const ALL: &'static [$name] = &[$($name::$variant),+];
            fn label(self) -> &'static str {
                match self {
                    $($name::$variant => $label,)+
                    $($($name::$other => $olabel,)+)?
                }
            }
        }
    };
    (
        @enum $(#[$meta:meta])* $vis:vis $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )+
        }
    };
}
pub(crate) use label_enum;
