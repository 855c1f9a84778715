//! The control plane (tonic gRPC server). It arrives with the control-plane issue; until
//! then every org is anonymous and the data plane needs no configuration from here.
