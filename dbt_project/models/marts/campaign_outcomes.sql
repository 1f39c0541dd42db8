{#- One row per (campaign, customer) of the retention campaigns: the arm (treated or the
    randomised control), channel and score decile, a pre-period covariate for CUPED and the
    outcome in the campaign's horizon.
    Pre-period: completed orders in [assigned_at - horizon_days, assigned_at), strictly
    before the assignment. Outcome: completed orders in [assigned_at, assigned_at +
    horizon_days); retained = at least one. The outcome exists only once the horizon has
    matured (assigned_at + horizon_days <= data_end); before that it is null and
    is_matured is false. Events on or after var as_of_end are ignored, like everywhere. -#}

with calendar as (

    select max(data_end) as data_end
    from {{ ref('snapshot_calendar') }}

),

assignments as (

    select
        campaign,
        customer_id,
        assigned_at,
        channel,
        treated,
        score_decile,
        horizon_days,
        planned_control_share,
        {{ add_days_to_timestamp('-horizon_days', 'assigned_at') }} as pre_period_start,
        {{ add_days_to_timestamp('horizon_days', 'assigned_at') }} as horizon_end
    from {{ ref('stg_shop__campaign_assignments') }}
    where {{ before_event_cutoff('assigned_at') }}

),

completed_orders as (

    select customer_id, ordered_at, revenue
    from {{ ref('stg_shop__orders') }}
    where status = 'completed'
      and {{ before_event_cutoff('ordered_at') }}

),

windows as (

    select
        assignments.campaign,
        assignments.customer_id,
        sum(case when completed_orders.ordered_at < assignments.assigned_at
                 then completed_orders.revenue else 0 end) as pre_period_revenue,
        sum(case when completed_orders.ordered_at < assignments.assigned_at
                 then 1 else 0 end) as pre_period_orders,
        sum(case when completed_orders.ordered_at >= assignments.assigned_at
                 then completed_orders.revenue else 0 end) as horizon_revenue,
        sum(case when completed_orders.ordered_at >= assignments.assigned_at
                 then 1 else 0 end) as horizon_orders
    from assignments
    inner join completed_orders
        on completed_orders.customer_id = assignments.customer_id
        and completed_orders.ordered_at >= assignments.pre_period_start
        and completed_orders.ordered_at < assignments.horizon_end
    group by assignments.campaign, assignments.customer_id

),

outcomes as (

    select
        assignments.campaign,
        assignments.customer_id,
        cast(assignments.assigned_at as date) as as_of_date,
        assignments.assigned_at,
        assignments.channel,
        assignments.treated,
        assignments.score_decile,
        assignments.horizon_days,
        assignments.planned_control_share,
        cast(coalesce(windows.pre_period_revenue, 0) as {{ type_double() }})
            as pre_period_revenue,
        cast(coalesce(windows.pre_period_orders, 0) as {{ dbt.type_int() }}) as pre_period_orders,
        {{ add_days('assignments.horizon_days', 'cast(assignments.assigned_at as date)') }}
            <= calendar.data_end as is_matured,
        coalesce(windows.horizon_orders, 0) as horizon_orders_observed,
        coalesce(windows.horizon_revenue, 0) as horizon_revenue_observed
    from assignments
    cross join calendar
    left join windows
        on windows.campaign = assignments.campaign
        and windows.customer_id = assignments.customer_id

)

select
    campaign,
    customer_id,
    as_of_date,
    assigned_at,
    channel,
    treated,
    score_decile,
    horizon_days,
    planned_control_share,
    pre_period_revenue,
    pre_period_orders,
    is_matured,
    cast(case when is_matured then (case when horizon_orders_observed > 0 then 1 else 0 end) end
         as {{ dbt.type_int() }}) as retained,
    cast(case when is_matured then horizon_orders_observed end as {{ dbt.type_int() }})
        as horizon_orders,
    cast(case when is_matured then horizon_revenue_observed end as {{ type_double() }})
        as horizon_revenue
from outcomes
