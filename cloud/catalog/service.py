"""The catalog services in one place (each lives in its own module; this re-exports them).

    accounts.py   create_account, get_account, list_accounts, rename_account, set_account_plan
    devices.py    create_profile, get_profile, list_profiles, set_profile_rule,
                  create_device, get_device, list_devices, update_device, set_device_site
    bindings.py   create_binding, end_binding, get_binding, device_bindings, account_bindings,
                  bindings_overlapping -> [BindingView]
    metrics.py    create_metric, get_metric, list_metrics, metric_spec, metric_specs
    plans.py      create_plan, get_plan, list_plans, create_plan_version, version_rows,
                  plan_versions, all_plan_versions
    unbilled.py   unbilled_usage -> [UnbilledDevice]

Every function takes keyword-only arguments (`session=` an `AsyncSession` in the caller's
transaction) and raises `CollectorError`s only.
"""

from cloud.catalog.accounts import (
    AccountKind,
    create_account,
    get_account,
    list_accounts,
    rename_account,
    set_account_plan,
)
from cloud.catalog.bindings import (
    BindingView,
    account_bindings,
    bindings_overlapping,
    create_binding,
    device_bindings,
    end_binding,
    get_binding,
)
from cloud.catalog.devices import (
    create_device,
    create_profile,
    get_device,
    get_profile,
    list_devices,
    list_profiles,
    set_device_site,
    set_profile_rule,
    update_device,
)
from cloud.catalog.metrics import create_metric, get_metric, list_metrics, metric_spec, metric_specs
from cloud.catalog.plans import (
    all_plan_versions,
    create_plan,
    create_plan_version,
    get_plan,
    list_plans,
    plan_versions,
    version_rows,
)
from cloud.catalog.unbilled import UnbilledDevice, unbilled_usage

__all__ = [
    "AccountKind",
    "BindingView",
    "UnbilledDevice",
    "account_bindings",
    "all_plan_versions",
    "bindings_overlapping",
    "create_account",
    "create_binding",
    "create_device",
    "create_metric",
    "create_plan",
    "create_plan_version",
    "create_profile",
    "device_bindings",
    "end_binding",
    "get_account",
    "get_binding",
    "get_device",
    "get_metric",
    "get_plan",
    "get_profile",
    "list_accounts",
    "list_devices",
    "list_metrics",
    "list_plans",
    "list_profiles",
    "metric_spec",
    "metric_specs",
    "plan_versions",
    "rename_account",
    "set_account_plan",
    "set_device_site",
    "set_profile_rule",
    "unbilled_usage",
    "update_device",
    "version_rows",
]
