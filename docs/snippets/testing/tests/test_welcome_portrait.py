def test_the_dag_renders_one_image_and_pays_once(phota_dag_bag, phota_conn_id, phota_emulator):
    dag = phota_dag_bag.get_dag("welcome_portrait")

    run = dag.test()

    assert run.state == "success"
    assert [charge.kind for charge in phota_emulator.ledger] == ["images"]
