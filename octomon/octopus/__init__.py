"""Everything that talks to Octopus: GraphQL, REST, the call ledger."""
