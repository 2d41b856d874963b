//! The programme: supply rules, earning rules, risk rules. Every change is an
//! event carrying the whole rule set and a version number, so any issuance
//! can be traced to the exact rules that priced it.

use serde::{Deserialize, Serialize};

use super::ids::Category;
use super::money::{Amount, POINTS_PER_COMMAND_MAX, Points, SUPPLY_CAP_MAX};
use super::rejection::{Rejection, RiskMeasure, RiskRule};
use super::time::Timestamp;

/// Longest trailing window for member tiers. State keeps per-day earnings
/// for this long, whatever the configured window, so a later, longer window
/// still sees complete history.
pub const TIER_WINDOW_DAYS_MAX: u32 = 731;
/// Longest velocity window. Recent redemptions and transfers are kept this
/// long regardless of configuration, for the same reason.
pub const VELOCITY_WINDOW_SECONDS_MAX: u64 = 31 * 86_400;
/// Longest release period.
pub const RELEASE_PERIOD_DAYS_MAX: u32 = 366;
/// Longest expiry policy: one hundred years.
pub const EXPIRY_DAYS_MAX: u32 = 36_525;
/// Largest multiplier any earning rule may apply.
pub const MULTIPLIER_MAX: u32 = 1_000;
/// Most entries in any rule list, to bound the work of pricing one purchase.
pub const RULE_ENTRIES_MAX: usize = 256;

/// The complete rule set of a programme, as configured by `PUT /v1/program`.
/// Only `supply_cap` is required; everything else defaults to "no limit".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProgramRules {
    /// Maximum outstanding points.
    pub supply_cap: Points,
    /// Days after issuance at which a lot expires; `None`: never.
    #[serde(default)]
    pub expiry_days: Option<u32>,
    /// Per-period release budget; `None`: no budget, only the cap.
    #[serde(default)]
    pub release: Option<ReleasePolicy>,
    #[serde(default)]
    pub earning_rules: EarningRules,
    #[serde(default)]
    pub risk_rules: RiskRules,
    #[serde(default)]
    pub reversal_policy: ReversalPolicy,
}

/// Budget of period `p` = `base_points + floor(redeemed_factor × points
/// redeemed in period p-1)`. Issuance is also always bounded by the cap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReleasePolicy {
    /// Length of a period in UTC days, periods aligned on the Unix epoch.
    #[serde(default = "one")]
    pub period_days: u32,
    pub base_points: Points,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub redeemed_factor: Amount,
}

fn one() -> u32 {
    1
}

fn one_amount() -> Amount {
    Amount(rust_decimal::Decimal::ONE)
}

fn default_tier_window_days() -> u32 {
    365
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EarningRules {
    /// Points per unit of purchase currency before multipliers, rounded down.
    #[serde(default = "one_amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub points_per_currency_unit: Amount,
    #[serde(default)]
    pub category_multipliers: Vec<CategoryMultiplier>,
    /// When several windows match, the largest multiplier applies.
    #[serde(default)]
    pub time_windows: Vec<TimeWindowMultiplier>,
    /// Member tiers by points earned in the trailing window; the highest tier
    /// reached applies.
    #[serde(default)]
    pub tiers: Vec<Tier>,
    #[serde(default = "default_tier_window_days")]
    pub tier_window_days: u32,
    /// Most points one order may earn; larger awards are cut to it.
    #[serde(default)]
    pub per_order_points_max: Option<Points>,
    /// Most points one account may earn per UTC day; awards are cut to the
    /// rest of the day's allowance, and refused when none is left.
    #[serde(default)]
    pub per_account_daily_points_max: Option<Points>,
}

impl Default for EarningRules {
    fn default() -> Self {
        EarningRules {
            points_per_currency_unit: one_amount(),
            category_multipliers: Vec::new(),
            time_windows: Vec::new(),
            tiers: Vec::new(),
            tier_window_days: default_tier_window_days(),
            per_order_points_max: None,
            per_account_daily_points_max: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CategoryMultiplier {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub category: Category,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub multiplier: Amount,
}

/// A multiplier active on some weekdays between two times of day (UTC).
/// `start_minute > end_minute` spans midnight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TimeWindowMultiplier {
    /// ISO weekdays, 1 = Monday .. 7 = Sunday; empty: every day.
    #[serde(default)]
    pub weekdays: Vec<u8>,
    /// Minutes after midnight UTC, inclusive.
    pub start_minute: u32,
    /// Minutes after midnight UTC, exclusive.
    pub end_minute: u32,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub multiplier: Amount,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Tier {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub name: Category,
    pub points_earned_min: Points,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub multiplier: Amount,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RiskRules {
    /// Applies to redemptions and holds (a hold is an authorised redemption).
    #[serde(default)]
    pub redemption_velocity: Option<VelocityLimit>,
    /// Applies to the sending account of a transfer.
    #[serde(default)]
    pub transfer_velocity: Option<VelocityLimit>,
}

impl RiskRules {
    /// The limit of `rule`, if the programme sets one.
    pub fn limit(&self, rule: RiskRule) -> Option<&VelocityLimit> {
        match rule {
            RiskRule::RedemptionVelocity => self.redemption_velocity.as_ref(),
            RiskRule::TransferVelocity => self.transfer_velocity.as_ref(),
        }
    }
}

/// Per-account limits over a sliding window. Breaching a hard limit rejects
/// the command; breaching a soft one accepts it and records a risk alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct VelocityLimit {
    pub window_seconds: u64,
    #[serde(default)]
    pub count_max: Option<u32>,
    #[serde(default)]
    pub points_max: Option<Points>,
    #[serde(default)]
    pub soft_count_max: Option<u32>,
    #[serde(default)]
    pub soft_points_max: Option<Points>,
}

/// One measure of a movement against a velocity limit: what the window
/// holds with the movement counted, and the limits on that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VelocityMeasure {
    pub measure: RiskMeasure,
    pub observed: u64,
    pub hard: Option<u64>,
    pub soft: Option<u64>,
}

impl VelocityMeasure {
    /// The hard limit the movement goes past, if it does.
    pub fn hard_breached(&self) -> Option<u64> {
        self.hard.filter(|hard| self.observed > *hard)
    }

    /// The soft limit the movement goes past, if it does.
    pub fn soft_breached(&self) -> Option<u64> {
        self.soft.filter(|soft| self.observed > *soft)
    }
}

impl VelocityLimit {
    /// The account's movements within the window before `now` (`recent`,
    /// oldest first, may reach further back) and one more of `points` at
    /// `now`, by count and by points. The one measure `decide` rejects and
    /// alerts by and `apply` re-checks a recorded movement by.
    pub fn measure<'recent>(
        &self,
        recent: impl IntoIterator<Item = &'recent (Timestamp, Points)>,
        points: Points,
        now: Timestamp,
    ) -> [VelocityMeasure; 2] {
        let window_start = now.minus_seconds(self.window_seconds);
        let (count, total) = recent
            .into_iter()
            .filter(|(at, _)| *at > window_start)
            .fold((1u64, points), |(count, total), (_, moved)| {
                (count + 1, total.saturating_add(*moved))
            });
        [
            VelocityMeasure {
                measure: RiskMeasure::Count,
                observed: count,
                hard: self.count_max.map(u64::from),
                soft: self.soft_count_max.map(u64::from),
            },
            VelocityMeasure {
                measure: RiskMeasure::Points,
                observed: total,
                hard: self.points_max,
                soft: self.soft_points_max,
            },
        ]
    }
}

/// What an issuance reversal does when the issued lot was partly spent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReversalPolicy {
    /// Claw back only what is left of the issued lot; report the rest as
    /// unrecoverable.
    #[default]
    UnspentOnly,
    /// Claw back the rest from the account's other available points,
    /// earliest expiry first; report only what even that cannot cover.
    AnyAvailable,
}

impl ProgramRules {
    /// A programme with only a cap: the documented defaults for the rest.
    pub fn with_cap(supply_cap: Points) -> ProgramRules {
        ProgramRules {
            supply_cap,
            expiry_days: None,
            release: None,
            earning_rules: EarningRules::default(),
            risk_rules: RiskRules::default(),
            reversal_policy: ReversalPolicy::default(),
        }
    }

    /// Checks the rules on their own, without the ledger's state.
    pub fn validate(&self) -> Result<(), Rejection> {
        if self.supply_cap == 0 || self.supply_cap > SUPPLY_CAP_MAX {
            return Err(Rejection::invalid(
                "supply_cap",
                format!("must be between 1 and {SUPPLY_CAP_MAX}"),
            ));
        }
        if let Some(days) = self.expiry_days
            && (days == 0 || days > EXPIRY_DAYS_MAX)
        {
            return Err(Rejection::invalid(
                "expiry_days",
                format!("must be between 1 and {EXPIRY_DAYS_MAX}"),
            ));
        }
        if let Some(release) = &self.release {
            if release.period_days == 0 || release.period_days > RELEASE_PERIOD_DAYS_MAX {
                return Err(Rejection::invalid(
                    "release.period_days",
                    format!("must be between 1 and {RELEASE_PERIOD_DAYS_MAX}"),
                ));
            }
            if release.base_points > SUPPLY_CAP_MAX {
                return Err(Rejection::invalid(
                    "release.base_points",
                    format!("must be at most {SUPPLY_CAP_MAX}"),
                ));
            }
            validate_multiplier("release.redeemed_factor", release.redeemed_factor)?;
        }
        self.earning_rules.validate()?;
        for (field, limit) in [
            (
                "risk_rules.redemption_velocity",
                &self.risk_rules.redemption_velocity,
            ),
            (
                "risk_rules.transfer_velocity",
                &self.risk_rules.transfer_velocity,
            ),
        ] {
            if let Some(limit) = limit
                && (limit.window_seconds == 0 || limit.window_seconds > VELOCITY_WINDOW_SECONDS_MAX)
            {
                return Err(Rejection::invalid(
                    format!("{field}.window_seconds"),
                    format!("must be between 1 and {VELOCITY_WINDOW_SECONDS_MAX}"),
                ));
            }
        }
        Ok(())
    }
}

impl EarningRules {
    fn validate(&self) -> Result<(), Rejection> {
        validate_multiplier(
            "earning_rules.points_per_currency_unit",
            self.points_per_currency_unit,
        )?;
        if self.category_multipliers.len() > RULE_ENTRIES_MAX
            || self.time_windows.len() > RULE_ENTRIES_MAX
            || self.tiers.len() > RULE_ENTRIES_MAX
        {
            return Err(Rejection::invalid(
                "earning_rules",
                format!("each rule list holds at most {RULE_ENTRIES_MAX} entries"),
            ));
        }
        for (index, entry) in self.category_multipliers.iter().enumerate() {
            validate_multiplier(
                &format!("earning_rules.category_multipliers[{index}].multiplier"),
                entry.multiplier,
            )?;
            if self.category_multipliers[..index]
                .iter()
                .any(|earlier| earlier.category == entry.category)
            {
                return Err(Rejection::invalid(
                    format!("earning_rules.category_multipliers[{index}].category"),
                    format!("category {} is listed twice", entry.category),
                ));
            }
        }
        for (index, window) in self.time_windows.iter().enumerate() {
            let field = format!("earning_rules.time_windows[{index}]");
            validate_multiplier(&format!("{field}.multiplier"), window.multiplier)?;
            if window.start_minute >= 1440 || window.end_minute > 1440 {
                return Err(Rejection::invalid(
                    field,
                    "start_minute must be below 1440 and end_minute at most 1440",
                ));
            }
            if window.start_minute == window.end_minute {
                return Err(Rejection::invalid(field, "the window is empty"));
            }
            if window.weekdays.iter().any(|day| !(1..=7).contains(day)) {
                return Err(Rejection::invalid(
                    format!("{field}.weekdays"),
                    "weekdays are 1 (Monday) to 7 (Sunday)",
                ));
            }
        }
        for (index, tier) in self.tiers.iter().enumerate() {
            validate_multiplier(
                &format!("earning_rules.tiers[{index}].multiplier"),
                tier.multiplier,
            )?;
        }
        if self.tier_window_days == 0 || self.tier_window_days > TIER_WINDOW_DAYS_MAX {
            return Err(Rejection::invalid(
                "earning_rules.tier_window_days",
                format!("must be between 1 and {TIER_WINDOW_DAYS_MAX}"),
            ));
        }
        for (field, limit) in [
            (
                "earning_rules.per_order_points_max",
                self.per_order_points_max,
            ),
            (
                "earning_rules.per_account_daily_points_max",
                self.per_account_daily_points_max,
            ),
        ] {
            if limit == Some(0) || limit.is_some_and(|points| points > POINTS_PER_COMMAND_MAX) {
                return Err(Rejection::invalid(
                    field,
                    format!("must be between 1 and {POINTS_PER_COMMAND_MAX}"),
                ));
            }
        }
        Ok(())
    }
}

fn validate_multiplier(field: &str, multiplier: Amount) -> Result<(), Rejection> {
    if multiplier.is_negative() || multiplier.0 > rust_decimal::Decimal::from(MULTIPLIER_MAX) {
        return Err(Rejection::invalid(
            field,
            format!("must be between 0 and {MULTIPLIER_MAX}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_cap_is_required() {
        let rules: ProgramRules =
            serde_json::from_str(r#"{"supply_cap": 1000}"#).expect("minimal programme parses");
        assert_eq!(rules, ProgramRules::with_cap(1000));
        assert_eq!(rules.validate(), Ok(()));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let parsed = serde_json::from_str::<ProgramRules>(r#"{"supply_cap": 1, "cap": 2}"#);
        assert!(parsed.is_err());
    }

    fn field_of(rules: &ProgramRules) -> Option<String> {
        match rules.validate() {
            Err(Rejection::ValidationError { field, .. }) => Some(field),
            _ => None,
        }
    }

    #[test]
    fn each_bad_value_names_its_field() {
        let mut rules = ProgramRules::with_cap(0);
        assert_eq!(field_of(&rules).as_deref(), Some("supply_cap"));
        rules.supply_cap = 10;
        rules.expiry_days = Some(0);
        assert_eq!(field_of(&rules).as_deref(), Some("expiry_days"));
        rules.expiry_days = None;
        rules.earning_rules.time_windows.push(TimeWindowMultiplier {
            weekdays: vec![8],
            start_minute: 0,
            end_minute: 60,
            multiplier: Amount(2.into()),
        });
        assert_eq!(
            field_of(&rules).as_deref(),
            Some("earning_rules.time_windows[0].weekdays")
        );
        rules.earning_rules.time_windows.clear();
        rules.risk_rules.transfer_velocity = Some(VelocityLimit {
            window_seconds: 0,
            count_max: Some(1),
            points_max: None,
            soft_count_max: None,
            soft_points_max: None,
        });
        assert_eq!(
            field_of(&rules).as_deref(),
            Some("risk_rules.transfer_velocity.window_seconds")
        );
        rules.risk_rules.transfer_velocity = None;
        rules.earning_rules.points_per_currency_unit = Amount((-1).into());
        assert_eq!(
            field_of(&rules).as_deref(),
            Some("earning_rules.points_per_currency_unit")
        );
    }
}
