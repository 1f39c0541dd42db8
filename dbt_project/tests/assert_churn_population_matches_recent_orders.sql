-- in_churn_population means a completed order in the prior churn_active_window_days:
-- exactly the rows whose last completed order is at most that many days old.
select customer_id, as_of_date, in_churn_population, days_since_last_order
from {{ ref('customer_features') }}
where in_churn_population
    != coalesce(days_since_last_order <= {{ days_var('churn_active_window_days') }}, false)
