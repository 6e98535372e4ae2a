"""What the collection wrote to an object, as a value tests can compare before and after a run.

resourceVersion changes whenever anybody writes, controllers included (the HPA controller updates its status, the
Deployment controller its Deployments'), so comparing it flakes on a busy machine. This compares only what our
writes change: the object's identity (a delete and re-create gives a new uid), its generation (spec changes), and
the managedFields entries of the collection's field manager (which fields it owns, written when)."""

import json

FIELD_MANAGER = "meshops.istio"


def written(obj) -> tuple:
    """(uid, generation, our managedFields entries) of an object (a dict, or a kubernetes library object)."""
    obj = _as_dict(obj)
    metadata = obj["metadata"]
    ours = [
        json.dumps(entry, sort_keys=True, default=str)
        for entry in metadata.get("managedFields") or metadata.get("managed_fields") or []
        if entry.get("manager") == FIELD_MANAGER
    ]
    # An autoscaler sets spec.replicas through the scale subresource, which moves a scalable object's generation
    # whenever it acts; for those our managedFields entries (their times move with every value we change) tell.
    scalable = "replicas" in (obj.get("spec") or {})
    return metadata.get("uid"), None if scalable else metadata.get("generation"), tuple(sorted(ours))


def _as_dict(obj) -> dict:
    if isinstance(obj, dict):
        return obj
    from kubernetes import client

    if hasattr(obj, "to_dict") and not hasattr(obj, "attribute_map"):  # the dynamic client's ResourceField
        return obj.to_dict()
    return client.ApiClient().sanitize_for_serialization(obj)  # a typed model: camelCase keys like the API
