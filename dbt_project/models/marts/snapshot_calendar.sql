{#- A few dozen rows: neither partitioned nor clustered on BigQuery. -#}
{{ config(partition_by=none, cluster_by=none) }}

select
    as_of_date,
    data_start,
    data_end,
    is_scoring_snapshot,
    churn_label_matured,
    propensity_label_matured
from {{ ref('int_snapshot_dates_generated') }}
