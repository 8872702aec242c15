"""Validates HOT templates with Heat's own engine, offline.

A template goes through what `openstack stack create` does to it (the heat
client gathers the nested templates and get_file contents), then through
Heat's checks, strict (`heat.engine.stack.Stack.validate`): the template's
version and sections, parameters and their constraints, conditions, every
resource type and every property against its schema, every intrinsic
function and what it refers to, outputs, and the nested stack the
autoscaling group builds.

Heat validates a nested stack leniently (its parameters come from the parent
at run time), so a get_param of a parameter the nested template lacks passes
there: validate each nested template on its own too, as deploy/validate does.

What needs a cloud is stubbed, and only that: lookups of named things in
Glance, Nova and Neutron (custom constraints such as nova.flavor, the
server's image against its flavor) succeed, the service catalogue has every
service, and Nova supports every microversion and has its default quotas.
No database is used: the stack is never stored.

Usage: heat_validate.py [--traceback] [-P NAME=VALUE ...] TEMPLATE...
Parameters without a default get a placeholder of their type unless given.
Prints one line per template, OK or FAIL with Heat's message; exits 1 if
any failed.
"""

import argparse
import logging
import sys
import traceback
import warnings
from unittest import mock

# Heat's import logs every hidden resource type and warns of eventlet.
warnings.filterwarnings("ignore")
logging.disable(logging.CRITICAL)

from heatclient.common import template_utils  # noqa: E402
from oslo_config import cfg  # noqa: E402

from heat.common import context as heat_context  # noqa: E402
from heat.common import exception  # noqa: E402
from heat.common import messaging  # noqa: E402
from heat.engine import constraints  # noqa: E402
from heat.engine import environment  # noqa: E402
from heat.engine import resource  # noqa: E402
from heat.engine import resources  # noqa: E402
from heat.engine import stack as heat_stack  # noqa: E402
from heat.engine import template as heat_template  # noqa: E402

# A value for each parameter type, for parameters with no default.
PLACEHOLDERS = {
    "string": "placeholder-0123456789",
    "number": "1",
    "comma_delimited_list": "placeholder-a,placeholder-b",
    "json": "{}",
    "boolean": "true",
}

NOVA_DEFAULT_LIMITS = {
    "maxServerMeta": 128,
    "maxPersonality": 5,
    "maxPersonalitySize": 10240,
}

_patches = []


def setup():
    """Loads Heat's resource types and stubs what would ask a cloud; once
    per process."""
    if _patches:
        return
    cfg.CONF([], project="heat", default_config_files=[])
    # A nested stack makes an RPC client, never called for a stack that was
    # never stored: an in-memory transport is enough.
    messaging.setup("fake://", optional=True)
    resources.initialise()
    # Heat's plugin loader gives resource modules module objects of their
    # own: a resource class is patched as the registry hands it out.
    server = resources.global_env().get_class("OS::Nova::Server")
    _patches.extend([
        mock.patch.object(constraints.BaseCustomConstraint, "validate",
                          return_value=True),
        mock.patch.object(resource.Resource, "is_service_available",
                          classmethod(lambda cls, context: (True, None))),
        mock.patch.object(server, "_validate_image_flavor", return_value=None),
        mock.patch("heat.engine.clients.os.nova.NovaClientPlugin.is_version_supported",
                   return_value=True),
        mock.patch("heat.engine.clients.os.nova.NovaClientPlugin.absolute_limits",
                   return_value=NOVA_DEFAULT_LIMITS),
    ])
    for patch in _patches:
        patch.start()


def offline_context():
    return heat_context.RequestContext.from_dict({
        "tenant_id": "validate-project",
        "tenant": "validate",
        "username": "validate",
        "user_id": "validate-user",
        "roles": [],
        "auth_url": "http://keystone.invalid:5000/v3",
        "auth_token": "offline",
        "region_name": "RegionOne",
    })


def load(path, overrides):
    files, tmpl = template_utils.get_template_contents(template_file=path)
    # The API receives the files as JSON strings.
    files = {url: content.decode() if isinstance(content, bytes) else content
             for url, content in files.items()}
    params = {
        name: PLACEHOLDERS.get(spec.get("type"), "placeholder")
        for name, spec in (tmpl.get("parameters") or {}).items()
        if "default" not in spec
    }
    params.update(overrides)
    env = environment.Environment({"parameters": params})
    return heat_template.Template(tmpl, files=files, env=env)


def check(path, overrides=None, show_traceback=False):
    """None if Heat accepts the template, else its message."""
    setup()
    try:
        tmpl = load(path, overrides or {})
        stack = heat_stack.Stack(offline_context(), "validate", tmpl, strict_validate=True)
        stack.validate()
    except exception.HeatException as err:
        if show_traceback:
            traceback.print_exc()
        return str(err)
    except Exception as err:  # a template Heat cannot even load
        if show_traceback:
            traceback.print_exc()
        return f"{type(err).__name__}: {err}"
    return None


def resolve(path, resource_name, property_name, overrides):
    """A property's value as the engine resolves it before creating the
    resource; attributes of resources not yet created resolve to None."""
    setup()
    stack = heat_stack.Stack(offline_context(), "validate", load(path, overrides),
                             strict_validate=True)
    stack.validate()
    return stack[resource_name].properties[property_name]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("templates", nargs="+", metavar="TEMPLATE")
    parser.add_argument("--traceback", action="store_true",
                        help="print the Python traceback of a failure")
    parser.add_argument("-P", "--parameter", action="append", default=[],
                        metavar="NAME=VALUE")
    args = parser.parse_args()
    overrides = dict(p.split("=", 1) for p in args.parameter)
    failed = 0
    for path in args.templates:
        error = check(path, overrides, args.traceback)
        if error:
            failed += 1
            print(f"FAIL {path}: {error}")
        else:
            print(f"OK   {path} (Heat engine, strict)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
