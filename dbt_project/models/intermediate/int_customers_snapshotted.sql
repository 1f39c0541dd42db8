{#- The spine: one row per (customer, as-of date) for every customer known strictly
    before the as-of date (as_of_date taken as midnight). -#}

with customers as (

    select * from {{ ref('int_customers_combined') }}

),

snapshots as (

    select as_of_date from {{ ref('int_snapshot_dates_generated') }}

)

select
    customers.customer_id,
    snapshots.as_of_date,
    customers.known_since_at,
    customers.signed_up_at,
    customers.first_order_at,
    customers.region,
    customers.acquisition_channel
from customers
inner join snapshots
    on customers.known_since_at < cast(snapshots.as_of_date as {{ dbt.type_timestamp() }})
