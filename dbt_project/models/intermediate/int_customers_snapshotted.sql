{#- The spine: one row per (customer, as-of date) for every customer known strictly
    before the as-of date (as_of_date taken as midnight). Incremental: a run builds the
    snapshots whose inputs changed (macros/incremental_snapshots.sql). -#}
{{ config(**incremental_snapshot_config()) }}

with customers as (

    select * from {{ ref('int_customers_combined') }}

),

snapshots as (

    select as_of_date from {{ ref('int_snapshot_dates_generated') }}
    where {{ snapshots_to_build('as_of_date') }}

),

fingerprints as (

    select * from {{ ref('int_snapshot_inputs_fingerprinted') }}

)

select
    customers.customer_id,
    snapshots.as_of_date,
    customers.known_since_at,
    customers.region,
    customers.acquisition_channel,
    {{ snapshot_fingerprint('fingerprints') }} as snapshot_fingerprint
from customers
inner join snapshots
    on customers.known_since_at < cast(snapshots.as_of_date as {{ dbt.type_timestamp() }})
left join fingerprints
    on snapshots.as_of_date = fingerprints.as_of_date
