"""What a tenant and a server are, and the options that describe a run.

``names`` is the name rule; ``tenant`` holds :class:`~.tenant.Tenant`,
:class:`~.tenant.Server` and the tables kept beside them; ``settings`` is
:class:`~.settings.TenantSettings`, read by ``reading``'s checked readers;
``rollout`` is what the rollout waves are.
"""
