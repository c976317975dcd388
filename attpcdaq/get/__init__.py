"""The GET protocol in pure asyncio Python: no Django here.

States and the planner (:mod:`.states`), the protocol's XML documents
(:mod:`.xmldocs`), the async ECC client (:mod:`.client`), GET data frames
(:mod:`.graw`), and the error tree (:mod:`.exceptions`).
"""

from .client import (
    DEFAULT_STATE_TIMEOUT,
    DEFAULT_TRANSITION_TIMEOUT,
    EccClient,
    StateReply,
    TextReply,
)
from .exceptions import (
    EccBusy,
    EccError,
    EccHttpError,
    EccProtocolError,
    EccRefused,
    EccSoapFault,
    EccTimeout,
    EccUnreachable,
    GetError,
    PlanError,
    XmlError,
)
from .graw import (
    Frame,
    FrameType,
    GrawError,
    Item,
    decode_frame,
    encode_frame,
    frame_length,
    iter_frames,
    make_event,
)
from .states import (
    OPERATIONS,
    Operation,
    State,
    Step,
    TransitionCode,
    backward_step,
    plan,
    step_for,
)
from .xmldocs import STEPS, ConfigId, DataLink, DataLinkSet, RouterType, parse_config_list

__all__ = [
    "DEFAULT_STATE_TIMEOUT",
    "DEFAULT_TRANSITION_TIMEOUT",
    "OPERATIONS",
    "STEPS",
    "ConfigId",
    "DataLink",
    "DataLinkSet",
    "EccBusy",
    "EccClient",
    "EccError",
    "EccHttpError",
    "EccProtocolError",
    "EccRefused",
    "EccSoapFault",
    "EccTimeout",
    "EccUnreachable",
    "Frame",
    "FrameType",
    "GetError",
    "GrawError",
    "Item",
    "Operation",
    "PlanError",
    "RouterType",
    "State",
    "StateReply",
    "Step",
    "TextReply",
    "TransitionCode",
    "XmlError",
    "backward_step",
    "decode_frame",
    "encode_frame",
    "frame_length",
    "iter_frames",
    "make_event",
    "parse_config_list",
    "plan",
    "step_for",
]
