"""Who may do what: generated credentials, Mosquitto password and ACL files from the plant, InfluxDB users,
TLS material for plants without their own PKI."""
