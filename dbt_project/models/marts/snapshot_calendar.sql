{#- A few dozen rows: neither partitioned nor clustered on BigQuery. -#}
{{ config(partition_by=none, cluster_by=none) }}

select
    as_of_date,
    data_start,
    data_end,
    is_scoring_snapshot,
    churn_label_matured,
    propensity_label_matured,
    {#- the label windows this build used: training checks each spec's horizon against them #}
    cast({{ days_var('churn_horizon_days') }} as {{ dbt.type_int() }}) as churn_horizon_days,
    cast({{ days_var('propensity_horizon_days') }} as {{ dbt.type_int() }}) as propensity_horizon_days,
    cast({{ days_var('click_attribution_days') }} as {{ dbt.type_int() }}) as click_attribution_days
from {{ ref('int_snapshot_dates_generated') }}
