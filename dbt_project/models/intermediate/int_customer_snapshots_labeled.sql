{#- Labels per (customer, as-of date) from completed orders in [as_of, as_of + horizon):
    churn = no completed order within churn_horizon_days; purchase = at least one within
    propensity_horizon_days. Null until the label has matured (as_of + horizon <= data_end).

    Stream technique again, looking forward: at a snapshot on day D the frame
    "RANGE BETWEEN CURRENT ROW AND h - 1 FOLLOWING" covers days [D, D + h - 1], i.e. orders
    in [as_of, as_of + h days): an order at the as-of midnight counts, one at as_of + h
    does not. first/last_label_order_at carry the orders each label saw (leakage guard). -#}
{%- set churn_horizon = days_var('churn_horizon_days') -%}
{%- set propensity_horizon = days_var('propensity_horizon_days') -%}

with spine as (

    select customer_id, as_of_date
    from {{ ref('int_customers_snapshotted') }}

),

calendar as (

    select as_of_date, churn_label_matured, propensity_label_matured
    from {{ ref('int_snapshot_dates_generated') }}

),

purchase_days as (

    select
        customer_id,
        {{ day_number('cast(ordered_at as date)') }} as day_number,
        count(*) as completed_orders,
        min(ordered_at) as first_ordered_at,
        max(ordered_at) as last_ordered_at
    from {{ ref('stg_shop__orders') }}
    where status = 'completed'
      and {{ before_event_cutoff('ordered_at') }}
    group by customer_id, cast(ordered_at as date)

),

stream as (

    select
        customer_id,
        {{ day_number('as_of_date') }} as day_number,
        as_of_date,
        cast(null as {{ dbt.type_int() }}) as completed_orders,
        cast(null as {{ dbt.type_timestamp() }}) as first_ordered_at,
        cast(null as {{ dbt.type_timestamp() }}) as last_ordered_at
    from spine

    union all

    select customer_id, day_number, cast(null as date), completed_orders, first_ordered_at, last_ordered_at
    from purchase_days

),

horizons as (

    select
        customer_id,
        as_of_date,
        sum(completed_orders) over churn_horizon as orders_in_churn_horizon,
        max(last_ordered_at) over churn_horizon as last_churn_horizon_order_at,
        sum(completed_orders) over propensity_horizon as orders_in_propensity_horizon,
        max(last_ordered_at) over propensity_horizon as last_propensity_horizon_order_at,
        min(first_ordered_at) over {{ 'churn_horizon' if churn_horizon >= propensity_horizon else 'propensity_horizon' }}
            as first_label_order_at
    from stream
    window
        churn_horizon as (partition by customer_id order by day_number range between current row and {{ churn_horizon - 1 }} following),
        propensity_horizon as (partition by customer_id order by day_number range between current row and {{ propensity_horizon - 1 }} following)

)

select
    horizons.customer_id,
    horizons.as_of_date,
    case
        when not calendar.churn_label_matured then null
        when coalesce(horizons.orders_in_churn_horizon, 0) = 0 then 1
        else 0
    end as churn_label,
    case
        when not calendar.propensity_label_matured then null
        when coalesce(horizons.orders_in_propensity_horizon, 0) > 0 then 1
        else 0
    end as purchase_label,
    {{ add_days(churn_horizon, 'horizons.as_of_date') }} as churn_label_matured_on,
    {{ add_days(propensity_horizon, 'horizons.as_of_date') }} as purchase_label_matured_on,
    horizons.first_label_order_at,
    horizons.last_churn_horizon_order_at,
    horizons.last_propensity_horizon_order_at
from horizons
inner join calendar
    on horizons.as_of_date = calendar.as_of_date
where horizons.as_of_date is not null
