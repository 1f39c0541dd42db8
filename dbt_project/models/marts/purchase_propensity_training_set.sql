{#- Purchase-propensity training rows: every known customer, at snapshots whose purchase
    label has matured. -#}
select
    features.*,
    labels.purchase_label as label,
    {{ add_days(days_var('propensity_horizon_days'), 'features.as_of_date') }} as label_matured_on
from {{ ref('customer_features') }} as features
inner join {{ ref('customer_labels') }} as labels
    on features.customer_id = labels.customer_id
    and features.as_of_date = labels.as_of_date
where features.in_propensity_population
  and labels.purchase_label is not null
