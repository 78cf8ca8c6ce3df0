"""Use-cases of the hub: validate, authorise, write, emit. Never imports strawberry."""
