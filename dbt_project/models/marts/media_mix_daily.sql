{#- The media-mix model's input: one row per (day, paid channel) of media spend, with the
    day's outcomes: new customers (signups that day, every acquisition channel: the
    incremental effect of media is on the total, whatever the last-touch label says), the
    revenue of their orders on their signup day, and the retailer's sale-day flag (the
    price/promotion control; ml.sim.media.promotion_days is the same calendar). Outcomes
    on day d use only events of day d. Days are those of raw.media_spend; a missing day
    stays missing (ml.mmm refuses the data and names it). -#}
{{ config(
    partition_by=none,
    cluster_by=(['channel'] if target.type == 'bigquery' else none)
) }}

with spend as (

    select * from {{ ref('stg_shop__media_spend') }}

),

signups as (

    select customer_id, cast(signed_up_at as date) as signup_date
    from {{ ref('stg_shop__customers') }}
    where signed_up_at is not null and {{ before_event_cutoff('signed_up_at') }}

),

signup_day_orders as (

    select s.signup_date, sum(o.revenue) as revenue
    from signups as s
    inner join {{ ref('stg_shop__orders') }} as o
        on o.customer_id = s.customer_id
        and cast(o.ordered_at as date) = s.signup_date
    where o.status = 'completed'
    group by s.signup_date

),

daily_outcomes as (

    select signup_date, count(*) as new_customers
    from signups
    group by signup_date

),

days as (

    select distinct spend_date from spend

)

select
    spend.spend_date as date,
    spend.channel,
    spend.spend,
    spend.impressions,
    spend.clicks,
    cast(coalesce(outcomes.new_customers, 0) as {{ dbt.type_int() }}) as new_customers,
    cast(coalesce(revenue.revenue, 0) as {{ type_double() }}) as first_day_revenue,
    cast(case
        when (extract(month from spend.spend_date) = 11 and extract(day from spend.spend_date) >= 24)
          or (extract(month from spend.spend_date) = 12 and extract(day from spend.spend_date) >= 26)
          or (extract(month from spend.spend_date) = 1 and extract(day from spend.spend_date) <= 3)
          or (extract(month from spend.spend_date) = 7 and extract(day from spend.spend_date) <= 7)
        then 1 else 0 end as {{ type_double() }}) as promotion
from spend
left join daily_outcomes as outcomes on outcomes.signup_date = spend.spend_date
left join signup_day_orders as revenue on revenue.signup_date = spend.spend_date
