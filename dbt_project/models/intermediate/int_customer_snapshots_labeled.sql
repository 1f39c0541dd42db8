{#- Labels per (customer, as-of date) from completed orders in [as_of, as_of + horizon):
    churn = no completed order within churn_horizon_days; purchase = at least one within
    propensity_horizon_days. Null until the label has matured (as_of + horizon <= data_end).

    Each snapshot joins its customer's purchase days in [as_of_day, as_of_day + h - 1]:
    an order at the as-of midnight counts, one at as_of + h days does not.
    first/last_*_order_at carry the orders each label saw (leakage guard). -#}
{%- set churn_horizon = days_var('churn_horizon_days') -%}
{%- set propensity_horizon = days_var('propensity_horizon_days') -%}

with spine as (

    select
        customer_id,
        as_of_date,
        {{ day_number('as_of_date') }} as as_of_day
    from {{ ref('int_customers_snapshotted') }}

),

calendar as (

    select as_of_date, churn_label_matured, propensity_label_matured
    from {{ ref('int_snapshot_dates_generated') }}

),

completed_orders as (

    select
        customer_id,
        {{ day_number('cast(ordered_at as date)') }} as order_day,
        ordered_at
    from {{ ref('stg_shop__orders') }}
    where status = 'completed'
      and {{ before_event_cutoff('ordered_at') }}

),

purchase_days as (

    select
        customer_id,
        order_day,
        min(ordered_at) as first_ordered_at,
        max(ordered_at) as last_ordered_at
    from completed_orders
    group by customer_id, order_day

),

horizons as (

    select
        spine.customer_id,
        spine.as_of_date,
        max(case when days.order_day < spine.as_of_day + {{ churn_horizon }} then 1 else 0 end)
            as purchased_in_churn_horizon,
        max(case when days.order_day < spine.as_of_day + {{ propensity_horizon }} then 1 else 0 end)
            as purchased_in_propensity_horizon,
        min(days.first_ordered_at) as first_label_order_at,
        max(case when days.order_day < spine.as_of_day + {{ churn_horizon }} then days.last_ordered_at end)
            as last_churn_horizon_order_at,
        max(case when days.order_day < spine.as_of_day + {{ propensity_horizon }} then days.last_ordered_at end)
            as last_propensity_horizon_order_at
    from spine
    left join purchase_days as days
        on spine.customer_id = days.customer_id
        and days.order_day >= spine.as_of_day
        and days.order_day < spine.as_of_day + {{ [churn_horizon, propensity_horizon] | max }}
    group by spine.customer_id, spine.as_of_date

)

select
    horizons.customer_id,
    horizons.as_of_date,
    case
        when not calendar.churn_label_matured then null
        when horizons.purchased_in_churn_horizon = 1 then 0
        else 1
    end as churn_label,
    case
        when not calendar.propensity_label_matured then null
        when horizons.purchased_in_propensity_horizon = 1 then 1
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
