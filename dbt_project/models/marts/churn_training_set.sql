{#- Churn training rows: customers with a completed order in the prior
    churn_active_window_days, at snapshots whose churn label has matured. -#}
select
    features.*,
    labels.churn_label as label,
    {{ add_days(days_var('churn_horizon_days'), 'features.as_of_date') }} as label_matured_on
from {{ ref('customer_features') }} as features
inner join {{ ref('customer_labels') }} as labels
    on features.customer_id = labels.customer_id
    and features.as_of_date = labels.as_of_date
where features.in_churn_population
  and labels.churn_label is not null
