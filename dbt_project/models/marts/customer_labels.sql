select
    customer_id,
    as_of_date,
    cast(churn_label as {{ dbt.type_int() }}) as churn_label,
    cast(purchase_label as {{ dbt.type_int() }}) as purchase_label
from {{ ref('int_customer_snapshots_labeled') }}
